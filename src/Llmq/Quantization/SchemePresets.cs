namespace Llmq.Quantization;

/// <summary>
/// compressed-tensors' preset schemes (spec §3, CT 0.18), as plain values. Lookup is case-insensitive; the targets default to
/// <c>["Linear"]</c>.
/// </summary>
public static class SchemePresets
{
    static QuantizationArgs IntWeights(int bits, int? group, bool symmetric = true) => new QuantizationArgs
    {
        NumBits = bits, Type = QuantizationType.Int, Symmetric = symmetric, GroupSize = group,
        Strategy = group is null ? QuantizationStrategy.Channel : QuantizationStrategy.Group,
    }.Validated();

    static QuantizationArgs Fp8(QuantizationStrategy strategy, DynamicMode dynamic = DynamicMode.Static, int? group = null, int[]? block = null, string? observer = null) => new QuantizationArgs
    {
        NumBits = 8, Type = QuantizationType.Float, Strategy = strategy, Dynamic = dynamic, GroupSize = group, BlockStructure = block, Observer = observer,
    }.Validated();

    static QuantizationArgs Fp4(int group, string scaleDtype, QuantizationStrategy strategy, DynamicMode dynamic = DynamicMode.Static, string? observer = null) => new QuantizationArgs
    {
        NumBits = 4, Type = QuantizationType.Float, Strategy = strategy, GroupSize = group, ScaleDtype = scaleDtype, Dynamic = dynamic, Observer = observer,
    }.Validated();

    static readonly QuantizationArgs Int8Token = new QuantizationArgs
    {
        NumBits = 8, Type = QuantizationType.Int, Strategy = QuantizationStrategy.Token, Dynamic = DynamicMode.Dynamic,
    }.Validated();

    static readonly Dictionary<string, (QuantizationArgs Weights, QuantizationArgs? Inputs)> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["W4A16"] = (IntWeights(4, 128), null),
        ["W4A16_ASYM"] = (IntWeights(4, 128, symmetric: false), null),
        ["W8A16"] = (IntWeights(8, 128), null),
        ["W8A8"] = (IntWeights(8, null), Int8Token),
        ["INT8"] = (IntWeights(8, null), Int8Token),
        ["FP8"] = (Fp8(QuantizationStrategy.Tensor), Fp8(QuantizationStrategy.Tensor, observer: "static_minmax")),
        ["FP8_DYNAMIC"] = (Fp8(QuantizationStrategy.Channel), Fp8(QuantizationStrategy.Token, DynamicMode.Dynamic)),
        ["FP8_BLOCK"] = (Fp8(QuantizationStrategy.Block, block: [128, 128]), Fp8(QuantizationStrategy.Group, DynamicMode.Dynamic, group: 128)),
        ["NVFP4A16"] = (Fp4(16, TorchDtypes.Float8E4M3, QuantizationStrategy.TensorGroup), null),
        ["NVFP4"] = (Fp4(16, TorchDtypes.Float8E4M3, QuantizationStrategy.TensorGroup),
                     Fp4(16, TorchDtypes.Float8E4M3, QuantizationStrategy.TensorGroup, DynamicMode.Local, "static_minmax")),
        ["MXFP4A16"] = (Fp4(32, TorchDtypes.UInt8, QuantizationStrategy.Group), null),
        ["MXFP4"] = (Fp4(32, TorchDtypes.UInt8, QuantizationStrategy.Group), Fp4(32, TorchDtypes.UInt8, QuantizationStrategy.Group, DynamicMode.Dynamic)),
    };

    /// <summary>Preset names, in the spec's order.</summary>
    public static IReadOnlyCollection<string> Names => Presets.Keys;

    public static bool Exists(string name) => Presets.ContainsKey(name);

    /// <summary>The preset as a scheme over <paramref name="targets"/> (default <c>["Linear"]</c>); unknown names → <see cref="LlmqException"/>.</summary>
    public static QuantizationScheme Get(string name, IReadOnlyList<string>? targets = null)
    {
        if (!Presets.TryGetValue(name, out var p))
            throw new LlmqException($"unknown scheme '{name}'; known schemes: {string.Join(", ", Presets.Keys)}");
        return new QuantizationScheme { Targets = targets ?? ["Linear"], Weights = p.Weights, InputActivations = p.Inputs };
    }
}
