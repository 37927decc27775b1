using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Tests.Models;

/// <summary>Shapes and flags of a tiny test model; <see cref="Json"/> renders them as a Hugging Face config.json.</summary>
public sealed record TinySpec(string Architecture, int Hidden = 32, int Layers = 2, int Heads = 4, int KvHeads = 2, int HeadDim = 8,
    int Intermediate = 48, int Vocab = 61, double RopeTheta = 10000, double Eps = 1e-6, bool Tied = false,
    bool QkvBias = false, bool OBias = false, bool QkNorm = false, int SlidingWindow = 0)
{
    public JsonObject Json()
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["hidden_size"] = Hidden,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["head_dim"] = HeadDim,
            ["intermediate_size"] = Intermediate,
            ["vocab_size"] = Vocab,
            ["rope_theta"] = RopeTheta,
            ["rms_norm_eps"] = Eps,
            ["tie_word_embeddings"] = Tied,
            ["hidden_act"] = "silu",
            ["attention_bias"] = OBias,
        };
        if (SlidingWindow > 0) json["sliding_window"] = SlidingWindow;
        return json;
    }
}

/// <summary>Tensors held in memory, for models that tests make up.</summary>
public sealed class InMemoryTensors : ITensorSource
{
    public Dictionary<string, (long[] Shape, float[] Data)> Tensors { get; } = new();

    public bool Contains(string name) => Tensors.ContainsKey(name);
    public long[] Shape(string name) => Tensors[name].Shape;
    public void ReadFloat32(string name, Span<float> dst) => Tensors[name].Data.CopyTo(dst);

    public float[] this[string name] => Tensors[name].Data;

    public void Add(string name, float[] data, params long[] shape) => Tensors[name] = (shape, data);
}

public static class TinyModels
{
    /// <summary>Random weights for <paramref name="spec"/>: Linears uniform in ±0.5/√in, norms 1 ± 0.3, biases ±0.2.</summary>
    public static InMemoryTensors Weights(TinySpec spec, int seed)
    {
        var rng = new Random(seed);
        var t = new InMemoryTensors();
        float[] Random(long n, double center, double spread) =>
            Enumerable.Range(0, (int)n).Select(_ => (float)(center + spread * (2 * rng.NextDouble() - 1))).ToArray();
        void Linear(string name, int rows, int cols) => t.Add(name + ".weight", Random((long)rows * cols, 0, 0.5 / Math.Sqrt(cols) * 2), rows, cols);

        int q = spec.Heads * spec.HeadDim, kv = spec.KvHeads * spec.HeadDim;
        t.Add("model.embed_tokens.weight", Random((long)spec.Vocab * spec.Hidden, 0, 1), spec.Vocab, spec.Hidden);
        for (int i = 0; i < spec.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            t.Add(p + "input_layernorm.weight", Random(spec.Hidden, 1, 0.3), spec.Hidden);
            t.Add(p + "post_attention_layernorm.weight", Random(spec.Hidden, 1, 0.3), spec.Hidden);
            Linear(p + "self_attn.q_proj", q, spec.Hidden);
            Linear(p + "self_attn.k_proj", kv, spec.Hidden);
            Linear(p + "self_attn.v_proj", kv, spec.Hidden);
            Linear(p + "self_attn.o_proj", spec.Hidden, q);
            Linear(p + "mlp.gate_proj", spec.Intermediate, spec.Hidden);
            Linear(p + "mlp.up_proj", spec.Intermediate, spec.Hidden);
            Linear(p + "mlp.down_proj", spec.Hidden, spec.Intermediate);
            if (spec.QkvBias || spec.OBias)
            {
                t.Add(p + "self_attn.q_proj.bias", Random(q, 0, 0.2), q);
                t.Add(p + "self_attn.k_proj.bias", Random(kv, 0, 0.2), kv);
                t.Add(p + "self_attn.v_proj.bias", Random(kv, 0, 0.2), kv);
            }
            if (spec.OBias) t.Add(p + "self_attn.o_proj.bias", Random(spec.Hidden, 0, 0.2), spec.Hidden);
            if (spec.QkNorm)
            {
                t.Add(p + "self_attn.q_norm.weight", Random(spec.HeadDim, 1, 0.3), spec.HeadDim);
                t.Add(p + "self_attn.k_norm.weight", Random(spec.HeadDim, 1, 0.3), spec.HeadDim);
            }
        }
        t.Add("model.norm.weight", Random(spec.Hidden, 1, 0.3), spec.Hidden);
        if (!spec.Tied) Linear("lm_head", spec.Vocab, spec.Hidden);
        return t;
    }

    public static ModelConfig Config(TinySpec spec) => ModelConfig.Parse(spec.Json());

    public static int[] Tokens(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }
}
