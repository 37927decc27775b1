using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Formats.Gguf;

/// <summary>A llama GGUF read back as dense float32 tensors under their Hugging Face names (the q/k permutation undone),
/// with a <see cref="ModelConfig"/> rebuilt from its llama.* metadata (rope_freqs.weight becomes rope_scaling 'llama3'
/// where it came from one, else 'freq_factors', llama.cpp's own rotary divisors): what evaluation and decompression run on.</summary>
public sealed class GgufTensorSource : ITensorSource, IDisposable
{
    readonly GgufReader _reader;
    readonly Dictionary<string, (GgufTensorInfo Info, GgufRowOrder Order)> _byHfName = new(StringComparer.Ordinal);

    public ModelConfig Config { get; }
    public GgufReader Reader => _reader;

    GgufTensorSource(GgufReader reader)
    {
        _reader = reader;
        if (reader.GetString("general.architecture") is not "llama")
            throw new LlmqException($"{reader.FilePath}: architecture '{reader.GetString("general.architecture")}' is not supported (llama is)");
        foreach (var t in reader.Tensors)
        {
            if (t.Name == GgufTensorNames.RopeFrequencies) continue;   // goes into the config (rope_scaling)
            var hf = GgufTensorNames.ToHf(t.Name, out var order);
            _byHfName[hf] = (t, order);
        }
        Config = ConfigFromMetadata(reader);
    }

    public static GgufTensorSource Open(string path) => new(GgufReader.Open(path));

    public IEnumerable<string> TensorNames => _byHfName.Keys;

    public bool Contains(string name) => _byHfName.ContainsKey(name);

    public long[] Shape(string name) => Lookup(name).Info.Shape;

    public void ReadFloat32(string name, Span<float> destination)
    {
        var (info, order) = Lookup(name);
        if (order == GgufRowOrder.AsIs)
        {
            _reader.ReadFloat32(info.Name, destination);
            return;
        }
        var stored = _reader.ReadFloat32(info.Name);
        int heads = order == GgufRowOrder.PermuteQueryHeads ? Config.NumAttentionHeads : Config.NumKeyValueHeads;
        GgufTensorNames.PermuteRows(stored, destination, heads, (int)info.Columns, inverse: true);
    }

    (GgufTensorInfo Info, GgufRowOrder Order) Lookup(string name) =>
        _byHfName.TryGetValue(name, out var e) ? e : throw new LlmqException($"{_reader.FilePath}: no tensor for '{name}'");

    /// <summary>config.json equivalent of the llama.* keys (llama.cpp's own reading of them).</summary>
    static ModelConfig ConfigFromMetadata(GgufReader r)
    {
        long Get(string key, long? fallback = null) =>
            r.Metadata.TryGetValue(key, out var v) ? v.AsInt64()
            : fallback ?? throw new InvalidCheckpointException(r.FilePath, null, $"metadata key '{key}' is missing");
        double GetFloat(string key, double fallback) => r.Metadata.TryGetValue(key, out var v) ? v.AsDouble() : fallback;
        long heads = Get("llama.attention.head_count"), hidden = Get("llama.embedding_length");
        long vocab = r.Metadata.TryGetValue("llama.vocab_size", out var vs) ? vs.AsInt64()
            : r.Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) ? tokens.Count : r.Info("token_embd.weight").Dimensions[1];
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_size"] = hidden,
            ["intermediate_size"] = Get("llama.feed_forward_length"),
            ["num_hidden_layers"] = Get("llama.block_count"),
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = Get("llama.attention.head_count_kv", heads),
            ["head_dim"] = Get("llama.attention.key_length", Get("llama.rope.dimension_count", hidden / heads)),
            ["vocab_size"] = vocab,
            ["max_position_embeddings"] = Get("llama.context_length", 2048),
            ["rms_norm_eps"] = GetFloat("llama.attention.layer_norm_rms_epsilon", 1e-5),
            ["rope_theta"] = GetFloat("llama.rope.freq_base", 10000),
            ["tie_word_embeddings"] = !r.Contains("output.weight"),
            ["torch_dtype"] = "float32",
        };
        if (r.Contains(GgufTensorNames.RopeFrequencies))
        {
            var factors = r.ReadFloat32(GgufTensorNames.RopeFrequencies);
            // Hugging Face's 'llama3' where the factors are exactly what it makes (as from convert_hf_to_gguf.py), else
            // the factors themselves (a type only Llmq reads)
            json["rope_scaling"] = GgufConverter.Llama3Scaling(factors, json["rope_theta"]!.GetValue<double>(), (int)json["head_dim"]!.GetValue<long>())
                ?? new JsonObject
                {
                    ["rope_type"] = "freq_factors",
                    ["freq_factors"] = new JsonArray(factors.Select(f => (JsonNode?)JsonValue.Create((double)f)).ToArray()),   // as doubles: exact through the text
                };
        }
        else if (r.GetString("llama.rope.scaling.type") == "linear")
            json["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = GetFloat("llama.rope.scaling.factor", 1) };
        // through text, so the numbers read back as JSON numbers of any width (as from config.json)
        return ModelConfig.Parse(JsonNode.Parse(json.ToJsonString())!.AsObject(), r.FilePath);
    }

    public void Dispose() => _reader.Dispose();
}
