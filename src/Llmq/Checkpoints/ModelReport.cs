using System.Text.Json.Nodes;

namespace Llmq.Checkpoints;

/// <summary>What <c>llmq inspect</c> says about a model: architecture, size, storage and quantization. Format-neutral:
/// dtype names are the format's own (BF16, I32, Q4_K, ...).</summary>
public sealed record ModelReport
{
    public required string Path { get; init; }
    /// <summary>"safetensors", "gguf", ...</summary>
    public required string Format { get; init; }
    public string? Architecture { get; init; }
    public string? ModelType { get; init; }
    /// <summary>Shape summary from the config ("hidden 64, 5 layers, ..."), when there is one.</summary>
    public string? Shape { get; init; }
    /// <summary>Sum of the tensors' element counts (for packed quantized tensors, the stored elements, not the weights they pack).</summary>
    public required long ParameterCount { get; init; }
    public required int TensorCount { get; init; }
    public required long TotalBytes { get; init; }
    public required IReadOnlyList<DTypeUsage> DTypes { get; init; }
    public required IReadOnlyList<ShardUsage> Shards { get; init; }
    public QuantizationSummary? Quantization { get; init; }
}

public sealed record DTypeUsage(string DType, int Tensors, long Elements, long Bytes);

public sealed record ShardUsage(string File, int Tensors, long Bytes);

/// <summary>The quantization a checkpoint declares: method (compressed-tensors, gptq, awq, gguf, ...), format, and one line per
/// scheme; <see cref="Config"/> is the declaring JSON as written.</summary>
public sealed record QuantizationSummary(string Method, string? Format, IReadOnlyList<string> Schemes, JsonObject? Config);
