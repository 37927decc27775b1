using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llmq.Checkpoints;

/// <summary>The fields of a Hugging Face config.json that Llmq uses, with the defaults transformers applies when a field is
/// absent (head_dim = hidden / heads, kv heads = heads, Qwen2's implicit q/k/v bias). <see cref="Json"/> keeps the whole file.</summary>
public sealed class ModelConfig
{
    public const string FileName = "config.json";

    public required JsonObject Json { get; init; }
    public required IReadOnlyList<string> Architectures { get; init; }
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int IntermediateSize { get; init; }
    public required int VocabSize { get; init; }
    public double RopeTheta { get; init; } = 10000;
    /// <summary>rope_scaling as written (type/rope_type, factor, ...), or null.</summary>
    public JsonObject? RopeScaling { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public bool TieWordEmbeddings { get; init; }
    public string? TorchDtype { get; init; }
    public bool AttentionBias { get; init; }
    public int MaxPositionEmbeddings { get; init; }
    public string HiddenAct { get; init; } = "silu";
    /// <summary>quantization_config when the checkpoint is quantized, else null.</summary>
    public JsonObject? QuantizationConfig => Json["quantization_config"] as JsonObject;

    public string Architecture => Architectures.Count > 0 ? Architectures[0] : ModelType;

    /// <summary>Reads config.json from a model directory (or the file itself).</summary>
    public static ModelConfig Load(string dir)
    {
        var path = File.Exists(dir) ? dir : Path.Combine(dir, FileName);
        if (!File.Exists(path))
            throw new LlmqException($"{dir}: not a model directory: no {FileName}");
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllBytes(path)) as JsonObject
                ?? throw new InvalidCheckpointException(path, null, "not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidCheckpointException(path, null, $"not well-formed JSON: {e.Message}");
        }
        return Parse(json, path);
    }

    public static ModelConfig Parse(JsonObject json, string path = FileName)
    {
        var modelType = Text(json, path, "model_type") ?? "";
        int hidden = Required(json, path, "hidden_size");
        int heads = Required(json, path, "num_attention_heads");
        if (heads <= 0 || hidden <= 0)
            throw new InvalidCheckpointException(path, null, "hidden_size and num_attention_heads must be positive");
        var scaling = json["rope_scaling"];
        if (scaling is not null and not JsonObject)
            throw new InvalidCheckpointException(path, null, "rope_scaling is not an object");
        return new ModelConfig
        {
            Json = json,
            Architectures = json["architectures"] is JsonArray a
                ? a.Select(x => x is JsonValue v && v.TryGetValue<string>(out var name) ? name
                    : throw new InvalidCheckpointException(path, null, "architectures holds a non-string")).ToList()
                : [],
            ModelType = modelType,
            HiddenSize = hidden,
            NumHiddenLayers = Required(json, path, "num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Value<int>(json, path, "num_key_value_heads") ?? heads,
            HeadDim = Value<int>(json, path, "head_dim") ?? hidden / heads,
            IntermediateSize = Required(json, path, "intermediate_size"),
            VocabSize = Required(json, path, "vocab_size"),
            RopeTheta = Value<double>(json, path, "rope_theta") ?? 10000,
            RopeScaling = scaling as JsonObject,
            RmsNormEps = Value<double>(json, path, "rms_norm_eps") ?? 1e-6,
            TieWordEmbeddings = Value<bool>(json, path, "tie_word_embeddings") ?? false,
            TorchDtype = Text(json, path, "torch_dtype") ?? Text(json, path, "dtype"),
            AttentionBias = Value<bool>(json, path, "attention_bias") ?? modelType == "qwen2",
            MaxPositionEmbeddings = Value<int>(json, path, "max_position_embeddings") ?? 0,
            HiddenAct = Text(json, path, "hidden_act") ?? "silu",
        };
    }

    static int Required(JsonObject json, string path, string field) =>
        Value<int>(json, path, field) ?? throw new InvalidCheckpointException(path, null, $"missing {field}");

    static T? Value<T>(JsonObject json, string path, string field) where T : struct
    {
        var node = json[field];
        if (node is null)
            return null;
        return node is JsonValue value && value.TryGetValue<T>(out var result)
            ? result
            : throw new InvalidCheckpointException(path, null, $"{field} is {node.ToJsonString()}, not a {typeof(T).Name}");
    }

    static string? Text(JsonObject json, string path, string field)
    {
        var node = json[field];
        if (node is null)
            return null;
        return node is JsonValue value && value.TryGetValue<string>(out var result)
            ? result
            : throw new InvalidCheckpointException(path, null, $"{field} is {node.ToJsonString()}, not a string");
    }
}
