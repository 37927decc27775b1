using System.Globalization;
using System.Text.Json.Nodes;

namespace Llmq.Quantization;

public enum QuantizationType { Int, Float }

public enum QuantizationStrategy { Tensor, Channel, Group, Block, Token, TensorGroup, AttnHead }

/// <summary>compressed-tensors' <c>dynamic</c>: false (static, scales stored), true (runtime scales, nothing stored),
/// "local" (per-group scales at runtime, tensor-level global scale stored; tensor_group only).</summary>
public enum DynamicMode { Static, Dynamic, Local }

/// <summary>
/// One tensor's quantization settings — compressed-tensors' <c>QuantizationArgs</c> (spec §1.4), with the same field names in
/// JSON. Construct with the properties, then <see cref="Validated"/> applies the spec's inference and validation rules so that
/// the JSON written is always self-consistent (strategy inferred from group_size, zp_dtype from type/bits, default observer).
/// </summary>
public sealed record QuantizationArgs
{
    public int NumBits { get; init; } = 8;
    public QuantizationType Type { get; init; } = QuantizationType.Int;
    public bool Symmetric { get; init; } = true;
    public int? GroupSize { get; init; }
    public QuantizationStrategy? Strategy { get; init; }
    /// <summary>[rows, cols] of one block (strategy block only).</summary>
    public int[]? BlockStructure { get; init; }
    public DynamicMode Dynamic { get; init; } = DynamicMode.Static;
    /// <summary>GPTQ activation ordering as written: "group", "weight", "static", "dynamic" or null.</summary>
    public string? ActOrder { get; init; }
    /// <summary>"torch.float8_e4m3fn" (NVFP4), "torch.uint8" (MX, E8M0) or null (model dtype).</summary>
    public string? ScaleDtype { get; init; }
    public string? ZpDtype { get; init; }
    public string? Observer { get; init; }
    public IReadOnlyDictionary<string, double> ObserverKwargs { get; init; } = new Dictionary<string, double>();

    /// <summary>Strategy after inference (§1.4 rule 1). Valid after <see cref="Validated"/>.</summary>
    public QuantizationStrategy ResolvedStrategy =>
        Strategy ?? (GroupSize is null ? QuantizationStrategy.Tensor : GroupSize == -1 ? QuantizationStrategy.Channel : QuantizationStrategy.Group);

    /// <summary>Symmetric integer grid without its most negative code: q ∈ [−(2^(b−1)−1), 2^(b−1)−1] (ggml's Q8_0 never
    /// writes −128). Not a compressed-tensors field: it restricts the grid we solve on, never what is written or read.</summary>
    public bool NarrowRange { get; init; }

    /// <summary>Smallest code (§4.1): −2^(b−1) for int (−(2^(b−1)−1) with <see cref="NarrowRange"/>), −448 for fp8, −6 for fp4.</summary>
    public float QMin => Type == QuantizationType.Int && !NarrowRange ? -(1 << (NumBits - 1)) : -QMax;

    /// <summary>Largest code: 2^(b−1)−1 for int, 448 for fp8, 6 for fp4.</summary>
    public float QMax => Type == QuantizationType.Int ? (1 << (NumBits - 1)) - 1 : NumBits == 8 ? 448f : 6f;

    /// <summary>MX formats (float, group 32, E8M0 scales) derive power-of-two scales instead of amax/qmax (§2.5).</summary>
    public bool IsMx => Type == QuantizationType.Float && GroupSize == 32 && ScaleDtype == TorchDtypes.UInt8;

    /// <summary>NVFP4-style two-level scales: tensor_group with a float32 global scale.</summary>
    public bool HasGlobalScale => ResolvedStrategy == QuantizationStrategy.TensorGroup;

    /// <summary>Applies §1.4's inference rules and rejects invalid combinations with a <see cref="LlmqException"/>.</summary>
    public QuantizationArgs Validated()
    {
        if (Type == QuantizationType.Int && NumBits is < 1 or > 32) throw Bad($"num_bits {NumBits} is out of range");
        if (Type == QuantizationType.Float && NumBits is not (4 or 8)) throw Bad($"float quantization supports 4 or 8 bits, not {NumBits}");
        if (Type == QuantizationType.Float && !Symmetric) throw Bad("asymmetric float quantization is not supported");
        if (GroupSize is < -1 or 0) throw Bad($"group_size {GroupSize} is invalid");
        if (NarrowRange && (Type != QuantizationType.Int || !Symmetric)) throw Bad("a narrow range is for symmetric integer grids");
        var strategy = ResolvedStrategy;
        var groupSize = strategy == QuantizationStrategy.Channel && GroupSize == -1 ? null : GroupSize;
        bool grouped = strategy is QuantizationStrategy.Group or QuantizationStrategy.TensorGroup;
        if (grouped && groupSize is not > 0) throw Bad($"strategy {Name(strategy)} needs a positive group_size");
        if (!grouped && groupSize is > 0) throw Bad($"group_size {groupSize} needs strategy group or tensor_group, not {Name(strategy)}");
        if ((strategy == QuantizationStrategy.Block) != (BlockStructure is not null)) throw Bad("block_structure goes with strategy block and only with it");
        if (BlockStructure is not null && (BlockStructure.Length != 2 || BlockStructure[0] <= 0 || BlockStructure[1] <= 0))
            throw Bad("block_structure must be two positive integers");
        if (strategy == QuantizationStrategy.Token && Dynamic != DynamicMode.Dynamic) throw Bad("token strategy requires dynamic: true");
        if (Dynamic != DynamicMode.Static && strategy is not (QuantizationStrategy.Token or QuantizationStrategy.Tensor or QuantizationStrategy.TensorGroup or QuantizationStrategy.Group))
            throw Bad($"dynamic quantization is not allowed with strategy {Name(strategy)}");
        if (Dynamic == DynamicMode.Local && strategy != QuantizationStrategy.TensorGroup) throw Bad("dynamic: \"local\" needs strategy tensor_group");
        var actOrder = ActOrder;
        if (actOrder is "group" or "dynamic" && !grouped) actOrder = null;   // GPTQ drops it silently for other strategies
        if (actOrder is not (null or "group" or "dynamic" or "weight" or "static")) throw Bad($"unknown actorder '{actOrder}'");
        return this with
        {
            Strategy = strategy,
            GroupSize = groupSize,
            ActOrder = actOrder,
            ZpDtype = Symmetric ? null : ZpDtype ?? InferZpDtype(),
            Observer = Observer ?? (Dynamic == DynamicMode.Dynamic ? null : Dynamic == DynamicMode.Local ? "minmax" : "memoryless_minmax"),
        };
    }

    string InferZpDtype() => Type == QuantizationType.Float ? TorchDtypes.Float8E4M3
        : NumBits <= 8 ? TorchDtypes.Int8 : NumBits <= 16 ? "torch.int16" : "torch.int32";

    static LlmqException Bad(string problem) => new($"invalid quantization args: {problem}");

    public static string Name(QuantizationStrategy s) => s switch
    {
        QuantizationStrategy.TensorGroup => "tensor_group",
        QuantizationStrategy.AttnHead => "attn_head",
        _ => s.ToString().ToLowerInvariant(),
    };

    static QuantizationStrategy ParseStrategy(string s) => s.ToLowerInvariant() switch
    {
        "tensor" => QuantizationStrategy.Tensor,
        "channel" => QuantizationStrategy.Channel,
        "group" => QuantizationStrategy.Group,
        "block" => QuantizationStrategy.Block,
        "token" => QuantizationStrategy.Token,
        "tensor_group" => QuantizationStrategy.TensorGroup,
        "attn_head" => QuantizationStrategy.AttnHead,
        _ => throw Bad($"unknown strategy '{s}'"),
    };

    /// <summary>The JSON object compressed-tensors writes (every field, keys sorted).</summary>
    public JsonObject ToJson()
    {
        var kwargs = new JsonObject();
        foreach (var (k, v) in ObserverKwargs.OrderBy(p => p.Key, StringComparer.Ordinal))
            kwargs[k] = v == Math.Floor(v) && Math.Abs(v) < 1e9 ? JsonValue.Create((long)v) : JsonValue.Create(v);
        return new JsonObject
        {
            ["actorder"] = ActOrder,
            ["block_structure"] = BlockStructure is null ? null : new JsonArray(BlockStructure[0], BlockStructure[1]),
            ["dynamic"] = Dynamic switch { DynamicMode.Local => JsonValue.Create("local"), DynamicMode.Dynamic => JsonValue.Create(true), _ => JsonValue.Create(false) },
            ["group_size"] = GroupSize,
            ["num_bits"] = NumBits,
            ["observer"] = Observer,
            ["observer_kwargs"] = kwargs,
            ["scale_dtype"] = ScaleDtype,
            ["strategy"] = Strategy is { } s ? Name(s) : null,
            ["symmetric"] = Symmetric,
            ["type"] = Type == QuantizationType.Int ? "int" : "float",
            ["zp_dtype"] = Symmetric ? null : ZpDtype,
        };
    }

    /// <summary>Reads a QuantizationArgs JSON object (as written by compressed-tensors, any version) and validates it.</summary>
    public static QuantizationArgs FromJson(JsonNode node)
    {
        if (node is not JsonObject o) throw Bad("expected a JSON object");
        int[]? block = null;
        if (o["block_structure"] is JsonArray arr) block = arr.Select(x => x!.GetValue<int>()).ToArray();
        else if (o["block_structure"] is JsonValue sv && sv.TryGetValue<string>(out var text))
            block = text.Split('x').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray();   // legacy "128x128"
        var dynamicNode = o["dynamic"];
        var dynamic = dynamicNode is null ? DynamicMode.Static
            : dynamicNode.GetValueKind() == System.Text.Json.JsonValueKind.String ? (dynamicNode.GetValue<string>() == "local" ? DynamicMode.Local : throw Bad("unknown dynamic value"))
            : dynamicNode.GetValue<bool>() ? DynamicMode.Dynamic : DynamicMode.Static;
        string? actorder = o["actorder"] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.True => "group",
            JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.False => null,
            var v => v.GetValue<string>(),
        };
        var kwargs = new Dictionary<string, double>();
        if (o["observer_kwargs"] is JsonObject kw)
            foreach (var (k, v) in kw)
                if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) kwargs[k] = d;
        return new QuantizationArgs
        {
            NumBits = o["num_bits"]?.GetValue<int>() ?? 8,
            Type = (o["type"]?.GetValue<string>() ?? "int").ToLowerInvariant() switch
            {
                "int" => QuantizationType.Int,
                "float" => QuantizationType.Float,
                var t => throw Bad($"unknown type '{t}'"),
            },
            Symmetric = o["symmetric"]?.GetValue<bool>() ?? true,
            GroupSize = o["group_size"]?.GetValue<int>(),
            Strategy = o["strategy"] is { } s ? ParseStrategy(s.GetValue<string>()) : null,
            BlockStructure = block,
            Dynamic = dynamic,
            ActOrder = actorder,
            ScaleDtype = o["scale_dtype"]?.GetValue<string>(),
            ZpDtype = o["zp_dtype"]?.GetValue<string>(),
            Observer = o["observer"]?.GetValue<string>(),
            ObserverKwargs = kwargs,
        }.Validated();
    }
}

/// <summary>The torch dtype strings compressed-tensors writes.</summary>
public static class TorchDtypes
{
    public const string Float8E4M3 = "torch.float8_e4m3fn";
    public const string UInt8 = "torch.uint8";
    public const string Int8 = "torch.int8";
}
