using System.Text.Json.Nodes;

namespace Llmq.Quantization;

/// <summary>
/// One config group of compressed-tensors' <c>quantization_config</c> (spec §1.3): which modules (<see cref="Targets"/>) get
/// which weight and activation quantization, and the on-disk <see cref="Format"/> (inferred when null).
/// </summary>
public sealed record QuantizationScheme
{
    public required IReadOnlyList<string> Targets { get; init; }
    public QuantizationArgs? Weights { get; init; }
    public QuantizationArgs? InputActivations { get; init; }
    public QuantizationArgs? OutputActivations { get; init; }
    public string? Format { get; init; }

    /// <summary>The format written to disk: the explicit one, else the §1.7 inference.</summary>
    public string ResolvedFormat => Format ?? CompressionFormat.Infer(this);

    /// <summary>True when writing this scheme needs activation statistics from calibration (static or "local" input scales).</summary>
    public bool NeedsActivationStatistics => InputActivations is { Dynamic: not DynamicMode.Dynamic };

    public JsonObject ToJson() => new()
    {
        ["format"] = ResolvedFormat,
        ["input_activations"] = InputActivations?.ToJson(),
        ["output_activations"] = OutputActivations?.ToJson(),
        ["targets"] = new JsonArray(Targets.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
        ["weights"] = Weights?.ToJson(),
    };

    public static QuantizationScheme FromJson(JsonNode node)
    {
        if (node is not JsonObject o) throw new LlmqException("invalid quantization scheme: expected a JSON object");
        var targets = o["targets"] is JsonArray arr ? arr.Select(t => t!.GetValue<string>()).ToArray()
            : throw new LlmqException("invalid quantization scheme: 'targets' is missing");
        return new QuantizationScheme
        {
            Targets = targets,
            Weights = o["weights"] is { } w ? QuantizationArgs.FromJson(w) : null,
            InputActivations = o["input_activations"] is { } i ? QuantizationArgs.FromJson(i) : null,
            OutputActivations = o["output_activations"] is { } x ? QuantizationArgs.FromJson(x) : null,
            Format = o["format"]?.GetValue<string>(),
        };
    }
}

/// <summary>compressed-tensors <c>CompressionFormat</c> values (spec §1.7) and the writer's automatic choice.</summary>
public static class CompressionFormat
{
    public const string Dense = "dense";
    public const string PackQuantized = "pack-quantized";
    public const string IntQuantized = "int-quantized";
    public const string FloatQuantized = "float-quantized";
    public const string NaiveQuantized = "naive-quantized";
    public const string Nvfp4PackQuantized = "nvfp4-pack-quantized";
    public const string Mxfp4PackQuantized = "mxfp4-pack-quantized";
    public const string Mxfp8Quantized = "mxfp8-quantized";
    public const string MixedPrecision = "mixed-precision";

    /// <summary>§1.7's priority list, first match wins.</summary>
    public static string Infer(QuantizationScheme scheme)
    {
        var w = scheme.Weights;
        if (w is null) return Dense;
        bool isFloat = w.Type == QuantizationType.Float;
        if (isFloat && w.NumBits == 4 && w.GroupSize == 32) return Mxfp4PackQuantized;
        if (isFloat && w.NumBits == 8 && w.GroupSize == 32 && w.ScaleDtype == TorchDtypes.UInt8) return Mxfp8Quantized;
        if (isFloat && w.NumBits == 4 && w.GroupSize == 16) return Nvfp4PackQuantized;
        var input = scheme.InputActivations;
        if (!isFloat && input is not null) return IntQuantized;
        if (!isFloat && w.NumBits <= 8 && input is null) return PackQuantized;
        if (isFloat && input is not null) return FloatQuantized;
        return NaiveQuantized;
    }
}
