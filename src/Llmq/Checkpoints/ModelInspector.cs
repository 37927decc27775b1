using System.Text.Json;
using System.Text.Json.Nodes;
using Llmq.Formats.Gguf;

namespace Llmq.Checkpoints;

/// <summary>Describes one on-disk model format to <see cref="ModelInspector"/>.</summary>
public interface IModelFormatInspector
{
    /// <summary>True when <paramref name="path"/> (a file or directory that exists) is this format's to describe.</summary>
    bool CanInspect(string path);
    ModelReport Inspect(string path);
}

/// <summary>Reports on a model directory or file. Formats are registered explicitly in <see cref="Formats"/>, the most
/// specific first (a format claiming single files before the safetensors one, which also takes directories).</summary>
public static class ModelInspector
{
    public static readonly IReadOnlyList<IModelFormatInspector> Formats = [new GgufInspector(), new SafetensorsInspector()];

    public static ModelReport Inspect(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new LlmqException($"{path}: no such file or directory");
        var format = Formats.FirstOrDefault(f => f.CanInspect(path))
            ?? throw new LlmqException($"{path}: not a model (no safetensors weights or other known format)");
        return format.Inspect(path);
    }
}

/// <summary>Safetensors checkpoints (single, sharded or a bare file) with their config.json, quantization_config and
/// GPTQ quantize_config.json.</summary>
public sealed class SafetensorsInspector : IModelFormatInspector
{
    public bool CanInspect(string path) =>
        Directory.Exists(path) || path.EndsWith(".safetensors", StringComparison.Ordinal) || path.EndsWith(".index.json", StringComparison.Ordinal);

    public ModelReport Inspect(string path)
    {
        using var checkpoint = Checkpoint.Open(path);
        var dir = checkpoint.Directory;
        var config = File.Exists(System.IO.Path.Combine(dir, ModelConfig.FileName)) ? ModelConfig.Load(dir) : null;
        var tensors = checkpoint.Tensors;
        return new ModelReport
        {
            Path = checkpoint.Path,
            Format = "safetensors",
            Architecture = config?.Architecture,
            ModelType = config?.ModelType,
            Shape = config is null ? null : Describe(config),
            ParameterCount = tensors.Sum(t => t.ElementCount),
            TensorCount = tensors.Count,
            TotalBytes = tensors.Sum(t => t.ByteLength),
            DTypes = tensors.GroupBy(t => t.DType).OrderBy(g => g.Key)
                .Select(g => new DTypeUsage(DTypes.Name(g.Key), g.Count(), g.Sum(t => t.ElementCount), g.Sum(t => t.ByteLength))).ToList(),
            Shards = checkpoint.Files
                .Select(f => new ShardUsage(System.IO.Path.GetRelativePath(dir, f.Path), tensors.Count(t => t.File == f.Path),
                    tensors.Where(t => t.File == f.Path).Sum(t => t.ByteLength))).ToList(),
            Quantization = Quantization(dir, config),
        };
    }

    static string Describe(ModelConfig c) =>
        $"hidden {c.HiddenSize}, {c.NumHiddenLayers} layers, {c.NumAttentionHeads} heads ({c.NumKeyValueHeads} kv, head_dim {c.HeadDim}), "
        + $"intermediate {c.IntermediateSize}, vocab {c.VocabSize}{(c.TieWordEmbeddings ? ", tied embeddings" : "")}"
        + (c.TorchDtype is null ? "" : $", {c.TorchDtype}");

    /// <summary>The quantization declared by config.json's quantization_config or a GPTQ quantize_config.json; null when none.</summary>
    internal static QuantizationSummary? Quantization(string dir, ModelConfig? config)
    {
        if (config?.QuantizationConfig is JsonObject q)
        {
            var method = Text(q["quant_method"]) ?? "unknown";
            return method == "compressed-tensors" ? CompressedTensors(q) : Gptq(method, q);
        }
        var gptqFile = System.IO.Path.Combine(dir, "quantize_config.json");
        if (!File.Exists(gptqFile))
            return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(gptqFile)) is JsonObject g
                ? Gptq(Text(g["quant_method"]) ?? "gptq", g)
                : throw new InvalidCheckpointException(gptqFile, null, "not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidCheckpointException(gptqFile, null, $"not well-formed JSON: {e.Message}");
        }
    }

    static QuantizationSummary CompressedTensors(JsonObject q)
    {
        var schemes = new List<string>();
        if (q["config_groups"] is JsonObject groups)
            foreach (var (name, node) in groups)
            {
                if (node is not JsonObject group)
                    continue;
                var targets = group["targets"] is JsonArray t ? string.Join(", ", t.Select(x => Text(x))) : "?";
                var format = Text(group["format"]);
                schemes.Add($"{name}: {targets}: weights {Args(group["weights"])}, input activations {Args(group["input_activations"])}"
                    + (group["output_activations"] is JsonObject ? $", output activations {Args(group["output_activations"])}" : "")
                    + (format is null ? "" : $" [{format}]"));
            }
        if (q["ignore"] is JsonArray ignore && ignore.Count > 0)
            schemes.Add($"ignore: {string.Join(", ", ignore.Take(8).Select(x => Text(x)))}{(ignore.Count > 8 ? $" (+{ignore.Count - 8} more)" : "")}");
        if (q["kv_cache_scheme"] is JsonObject kv)
            schemes.Add($"kv cache: {Args(kv)}");
        if (q["sparsity_config"] is JsonObject sparsity)
            schemes.Add($"sparsity: {Text(sparsity["format"])} {Text(sparsity["sparsity_structure"])}".TrimEnd());
        return new QuantizationSummary("compressed-tensors", Text(q["format"]), schemes, q);
    }

    /// <summary>One line for a compressed-tensors QuantizationArgs: "int4 symmetric group 128", "float8 dynamic token", "none".</summary>
    static string Args(JsonNode? node)
    {
        if (node is not JsonObject a)
            return "none";
        var parts = new List<string> { $"{Text(a["type"]) ?? "int"}{a["num_bits"]}" };
        if (a["symmetric"] is JsonValue sym && sym.TryGetValue<bool>(out var symmetric))
            parts.Add(symmetric ? "symmetric" : "asymmetric");
        var strategy = Text(a["strategy"]);
        if (strategy is not null)
            parts.Add(strategy switch
            {
                "group" or "tensor_group" => $"{strategy} {a["group_size"]}",
                "block" => $"block {a["block_structure"]?.ToJsonString()}",
                _ => strategy,
            });
        if (a["dynamic"] is JsonValue dyn && dyn.TryGetValue<bool>(out var dynamic) && dynamic)
            parts.Add("dynamic");
        if (Text(a["actorder"]) is string actorder)
            parts.Add($"actorder {actorder}");
        return string.Join(" ", parts);
    }

    static QuantizationSummary Gptq(string method, JsonObject g)
    {
        var line = $"{g["bits"]}-bit, group {g["group_size"]}";
        if (g["desc_act"] is JsonNode desc)
            line += $", desc_act {desc.ToJsonString()}";
        if (g["sym"] is JsonNode sym)
            line += $", sym {sym.ToJsonString()}";
        return new QuantizationSummary(method, Text(g["checkpoint_format"]), [line], g);
    }

    static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : node?.ToJsonString();
}
