using Llmq.Checkpoints;

namespace Llmq.Formats.Gguf;

/// <summary>`llmq inspect` for .gguf files: architecture and shape from the metadata, elements and bytes per ggml type,
/// the file type (general.file_type) as the quantization.</summary>
public sealed class GgufInspector : IModelFormatInspector
{
    public bool CanInspect(string path) => File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);

    public ModelReport Inspect(string path)
    {
        using var r = GgufReader.Open(path);
        var arch = r.GetString("general.architecture");
        string? Num(string key) => r.Metadata.TryGetValue($"{arch}.{key}", out var v) ? v.ToString() : null;
        var fileType = r.Metadata.TryGetValue("general.file_type", out var ft) ? ((GgufFileType)(uint)ft.AsInt64()).ToString() : null;
        var byType = r.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key).ToList();
        return new ModelReport
        {
            Path = Path.GetFullPath(path),
            Format = $"gguf v{r.Version}",
            Architecture = arch,
            Shape = $"hidden {Num("embedding_length")}, {Num("block_count")} layers, {Num("attention.head_count")} heads "
                + $"({Num("attention.head_count_kv")} kv), feed-forward {Num("feed_forward_length")}, "
                + $"vocab {(r.Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) ? tokens.Count : 0)} ({r.GetString("tokenizer.ggml.model") ?? "no tokenizer"})",
            ParameterCount = r.Tensors.Sum(t => t.ElementCount),
            TensorCount = r.Tensors.Count,
            TotalBytes = r.Tensors.Sum(t => t.ByteLength),
            DTypes = byType.Select(g => new DTypeUsage(GgmlTypes.Name(g.Key), g.Count(), g.Sum(t => t.ElementCount), g.Sum(t => t.ByteLength))).ToList(),
            Shards = [new ShardUsage(Path.GetFileName(path), r.Tensors.Count, r.Tensors.Sum(t => t.ByteLength))],
            Quantization = fileType is null ? null : new QuantizationSummary("gguf", fileType,
                byType.Select(g => $"{GgmlTypes.Name(g.Key)}: {string.Join(", ", g.Take(4).Select(t => t.Name))}{(g.Count() > 4 ? $" (+{g.Count() - 4} more)" : "")}").ToList(),
                null),
        };
    }
}
