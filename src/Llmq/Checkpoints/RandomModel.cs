using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llmq.Checkpoints;

/// <summary>Writes a random-weight model in Hugging Face layout (config.json + safetensors through <see cref="SafetensorsWriter"/>,
/// streaming, in the spec's dtype). Linear weights and embeddings are N(0, 1/fan_in), so activations keep unit scale as
/// in trained models; norm weights are 1 + N(0, 0.05²); biases N(0, 0.02²). Deterministic in the seed, whatever the core count.</summary>
public static class RandomModel
{
    const int Chunk = 1 << 20; // elements per independently seeded block of random numbers
    const int Batch = 8 * Chunk;

    public static void Write(string dir, RandomModelSpec spec, int seed, long maxShardBytes = SafetensorsWriter.DefaultMaxShardBytes)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, ModelConfig.FileName), Config(spec).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        using var writer = new SafetensorsWriter(dir, maxShardBytes);
        var buffer = new float[Math.Min(Batch, Math.Max(spec.VocabSize, spec.IntermediateSize) * (long)spec.HiddenSize)];
        foreach (var (name, shape, kind) in Tensors(spec))
        {
            writer.Begin(name, spec.DType, shape);
            long count = TensorInfo.ElementsOf(shape);
            float std = kind switch
            {
                Kind.Weight => 1f / MathF.Sqrt(shape[^1]),
                Kind.Norm => 0.05f,
                _ => 0.02f,
            };
            ulong stream = Hash(name) ^ (ulong)seed * 0x9E3779B97F4A7C15UL;
            for (long done = 0; done < count; done += Batch)
            {
                int size = (int)Math.Min(Batch, count - done);
                var part = buffer.AsMemory(0, size);
                long firstChunk = done / Chunk;
                Parallel.For(0, (size + Chunk - 1) / Chunk, c =>
                {
                    var span = part.Span.Slice(c * Chunk, Math.Min(Chunk, size - c * Chunk));
                    Normal(stream + (ulong)(firstChunk + c) * 0xD1B54A32D192ED03UL, span, std);
                    if (kind == Kind.Norm)
                        TensorPrimitives.Add(span, 1f, span);
                });
                writer.AppendFloat32(part.Span);
            }
            writer.End();
        }
        writer.Finish();
    }

    enum Kind { Weight, Norm, Bias }

    /// <summary>Tensor names and shapes in Hugging Face order.</summary>
    static IEnumerable<(string Name, long[] Shape, Kind Kind)> Tensors(RandomModelSpec s)
    {
        long h = s.HiddenSize, q = (long)s.NumHeads * s.ResolvedHeadDim, kv = (long)s.NumKvHeads * s.ResolvedHeadDim;
        yield return ("model.embed_tokens.weight", [s.VocabSize, h], Kind.Weight);
        for (int i = 0; i < s.NumLayers; i++)
        {
            var p = $"model.layers.{i}.";
            yield return (p + "input_layernorm.weight", [h], Kind.Norm);
            yield return (p + "self_attn.q_proj.weight", [q, h], Kind.Weight);
            yield return (p + "self_attn.k_proj.weight", [kv, h], Kind.Weight);
            yield return (p + "self_attn.v_proj.weight", [kv, h], Kind.Weight);
            if (s.QkvBias)
            {
                yield return (p + "self_attn.q_proj.bias", [q], Kind.Bias);
                yield return (p + "self_attn.k_proj.bias", [kv], Kind.Bias);
                yield return (p + "self_attn.v_proj.bias", [kv], Kind.Bias);
            }
            if (s.QkNorm)
            {
                yield return (p + "self_attn.q_norm.weight", [s.ResolvedHeadDim], Kind.Norm);
                yield return (p + "self_attn.k_norm.weight", [s.ResolvedHeadDim], Kind.Norm);
            }
            yield return (p + "self_attn.o_proj.weight", [h, q], Kind.Weight);
            yield return (p + "post_attention_layernorm.weight", [h], Kind.Norm);
            yield return (p + "mlp.gate_proj.weight", [s.IntermediateSize, h], Kind.Weight);
            yield return (p + "mlp.up_proj.weight", [s.IntermediateSize, h], Kind.Weight);
            yield return (p + "mlp.down_proj.weight", [h, s.IntermediateSize], Kind.Weight);
        }
        yield return ("model.norm.weight", [h], Kind.Norm);
        if (!s.TieWordEmbeddings)
            yield return ("lm_head.weight", [s.VocabSize, h], Kind.Weight);
    }

    static JsonObject Config(RandomModelSpec s)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(s.Architecture),
            ["model_type"] = s.ModelType,
            ["hidden_size"] = s.HiddenSize,
            ["intermediate_size"] = s.IntermediateSize,
            ["num_hidden_layers"] = s.NumLayers,
            ["num_attention_heads"] = s.NumHeads,
            ["num_key_value_heads"] = s.NumKvHeads,
            ["vocab_size"] = s.VocabSize,
            ["max_position_embeddings"] = s.MaxPositionEmbeddings,
            ["rms_norm_eps"] = s.RmsNormEps,
            ["rope_theta"] = s.RopeTheta,
            ["rope_scaling"] = null,
            ["hidden_act"] = "silu",
            ["tie_word_embeddings"] = s.TieWordEmbeddings,
            ["torch_dtype"] = DTypes.TorchName(s.DType),
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
        };
        if (s.HeadDim is int headDim)
            config["head_dim"] = headDim;
        if (s.ModelType != "qwen2") // Qwen2's q/k/v bias is implied by the architecture, not written
            config["attention_bias"] = false;
        return config;
    }

    /// <summary>Fills <paramref name="values"/> with N(0, std²) by Box–Muller over a SplitMix64 stream.</summary>
    static void Normal(ulong state, Span<float> values, float std)
    {
        const int Block = 4096;
        Span<float> radius = stackalloc float[Block / 2], angle = stackalloc float[Block / 2];
        Span<float> sin = stackalloc float[Block / 2], cos = stackalloc float[Block / 2];
        for (int start = 0; start < values.Length; start += Block)
        {
            int pairs = (Math.Min(Block, values.Length - start) + 1) / 2;
            for (int i = 0; i < pairs; i++)
            {
                ulong bits = SplitMix64(ref state);
                radius[i] = ((uint)(bits >> 40) + 1) * (1f / 16777216f); // (0, 1]
                angle[i] = (uint)(bits & 0xFFFFFF) * (2 * MathF.PI / 16777216f);
            }
            var r = radius[..pairs];
            TensorPrimitives.Log(r, r);
            TensorPrimitives.Multiply(r, -2f, r);
            TensorPrimitives.Sqrt(r, r);
            TensorPrimitives.Multiply(r, std, r);
            TensorPrimitives.SinCos(angle[..pairs], sin[..pairs], cos[..pairs]);
            var block = values.Slice(start, Math.Min(Block, values.Length - start));
            for (int i = 0; i < block.Length; i++)
                block[i] = r[i >> 1] * ((i & 1) == 0 ? cos[i >> 1] : sin[i >> 1]);
        }
    }

    static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // FNV-1a: a stable per-tensor stream, independent of tensor order.
    static ulong Hash(string name)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in name)
            h = (h ^ c) * 0x100000001B3UL;
        return h;
    }
}
