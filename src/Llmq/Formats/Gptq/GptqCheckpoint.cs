using System.Text.Json;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Formats.Gptq;

/// <summary>
/// <c>quantize_config.json</c> of AutoGPTQ / GPTQModel, also merged into config.json as <c>quantization_config</c> (with
/// <c>quant_method: "gptq"</c>), which is what transformers and vLLM read. <c>group_size</c> −1 means channel-wise;
/// <c>desc_act</c> says g_idx is not plain i / group_size (activation order "group"); <c>static_groups</c> says group
/// parameters were fixed before the sweep.
/// </summary>
public sealed record GptqQuantizeConfig(int Bits, int GroupSize, bool DescAct, bool Sym, double DampPercent, bool StaticGroups)
{
    public const string FileName = "quantize_config.json";

    public JsonObject ToJson() => new()
    {
        ["bits"] = Bits,
        ["group_size"] = GroupSize,
        ["desc_act"] = DescAct,
        ["sym"] = Sym,
        ["damp_percent"] = DampPercent,
        ["static_groups"] = StaticGroups,
        ["true_sequential"] = false, // every Linear of a layer sees unquantized intra-layer inputs (llm-compressor's way)
        ["quant_method"] = "gptq",
        ["checkpoint_format"] = "gptq",
        ["model_file_base_name"] = "model",
    };

    public static GptqQuantizeConfig Parse(JsonObject json, string file)
    {
        T Get<T>(string key, T? fallback = null) where T : struct
        {
            try { return json[key] is { } node ? node.GetValue<T>() : fallback ?? throw new InvalidCheckpointException(file, null, $"'{key}' is missing"); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new InvalidCheckpointException(file, null, $"'{key}' is not a {typeof(T).Name}");
            }
        }
        if (json["checkpoint_format"]?.GetValue<string>() is { } format && format != "gptq")
            throw new InvalidCheckpointException(file, null, $"checkpoint_format '{format}' is not supported (only the v1 'gptq' layout)");
        var bits = Get<int>("bits");
        if (bits is not (2 or 3 or 4 or 8)) throw new InvalidCheckpointException(file, null, $"bits {bits} is not 2, 3, 4 or 8");
        return new GptqQuantizeConfig(bits, Get<int>("group_size"), Get<bool>("desc_act", false), Get<bool>("sym", true),
            Get<double>("damp_percent", 0.01), Get<bool>("static_groups", false));
    }
}

/// <summary>A GPTQ-format checkpoint as float32 tensors: every <c>M.weight</c> of a quantized module M is dequantized from
/// M.qweight/qzeros/scales/g_idx on read; all other tensors pass through. Usable wherever an <see cref="ITensorSource"/>
/// is (e.g. to run the model, or to compare with another export).</summary>
public sealed class GptqCheckpoint : ITensorSource, IDisposable
{
    public Checkpoint Checkpoint { get; }
    public GptqQuantizeConfig QuantizeConfig { get; }
    /// <summary>Names of the quantized modules (without a suffix).</summary>
    public IReadOnlyCollection<string> QuantizedModules => _modules;

    readonly HashSet<string> _modules;

    GptqCheckpoint(Checkpoint checkpoint, GptqQuantizeConfig config)
    {
        Checkpoint = checkpoint;
        QuantizeConfig = config;
        _modules = checkpoint.Tensors.Where(t => t.Name.EndsWith(GptqLinear.QWeight, StringComparison.Ordinal))
            .Select(t => t.Name[..^GptqLinear.QWeight.Length]).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Opens a directory with quantize_config.json (or config.json's quantization_config) and safetensors.</summary>
    public static GptqCheckpoint Open(string dir)
    {
        var file = Path.Combine(dir, GptqQuantizeConfig.FileName);
        JsonObject json;
        if (File.Exists(file))
            json = Parse(file);
        else
        {
            file = Path.Combine(dir, ModelConfig.FileName);
            json = Parse(file)["quantization_config"] as JsonObject ?? throw new LlmqException($"{dir}: neither {GptqQuantizeConfig.FileName} nor a quantization_config in config.json");
            if (json["quant_method"]?.GetValue<string>() != "gptq") throw new InvalidCheckpointException(file, null, "quantization_config is not quant_method 'gptq'");
        }
        var config = GptqQuantizeConfig.Parse(json, file);
        return new GptqCheckpoint(Checkpoint.Open(dir), config);
    }

    static JsonObject Parse(string file)
    {
        try { return JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new InvalidCheckpointException(file, null, "is not a JSON object"); }
        catch (JsonException e) { throw new InvalidCheckpointException(file, null, $"is not valid JSON: {e.Message}"); }
    }

    static string? ModuleOfWeight(string name) =>
        name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : null;

    public bool Contains(string name) => ModuleOfWeight(name) is { } m && _modules.Contains(m) || Checkpoint.Contains(name);

    public long[] Shape(string name)
    {
        if (ModuleOfWeight(name) is not { } m || !_modules.Contains(m)) return Checkpoint.Shape(name);
        var qweight = Checkpoint.Info(m + GptqLinear.QWeight);
        return [qweight.Shape[1], qweight.Shape[0] * 32 / QuantizeConfig.Bits];
    }

    public void ReadFloat32(string name, Span<float> destination)
    {
        if (ModuleOfWeight(name) is { } m && _modules.Contains(m))
            GptqLinear.Dequantize(GptqLinear.Read(Checkpoint, m, QuantizeConfig.Bits), destination);
        else
            Checkpoint.ReadFloat32(name, destination);
    }

    public void Dispose() => Checkpoint.Dispose();
}
