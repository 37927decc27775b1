namespace Llmq.Checkpoints;

/// <summary>The shape of a random-weight decoder-only model (Llama, Mistral, Qwen2, Qwen3 layouts) for <see cref="RandomModel"/>.</summary>
public sealed record RandomModelSpec(
    string Architecture, string ModelType, int HiddenSize, int NumLayers, int NumHeads, int NumKvHeads, int IntermediateSize, int VocabSize)
{
    /// <summary>Per-head size; null means HiddenSize / NumHeads (and no head_dim in config.json).</summary>
    public int? HeadDim { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry biases (Qwen2).</summary>
    public bool QkvBias { get; init; }
    /// <summary>RMSNorm over each head of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    public DType DType { get; init; } = DType.BF16;
    public double RopeTheta { get; init; } = 10000;
    public double RmsNormEps { get; init; } = 1e-5;
    public int MaxPositionEmbeddings { get; init; } = 2048;

    public int ResolvedHeadDim => HeadDim ?? HiddenSize / NumHeads;

    /// <summary>Parameters the model will hold (tied embeddings counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long h = HiddenSize, q = (long)NumHeads * ResolvedHeadDim, kv = (long)NumKvHeads * ResolvedHeadDim;
            long layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * IntermediateSize
                + (QkvBias ? q + 2 * kv : 0) + (QkNorm ? 2 * ResolvedHeadDim : 0);
            return (long)VocabSize * h * (TieWordEmbeddings ? 1 : 2) + NumLayers * layer + h;
        }
    }

    public static RandomModelSpec Llama(int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab) =>
        new("LlamaForCausalLM", "llama", hidden, layers, heads, kvHeads, intermediate, vocab);

    public static RandomModelSpec Mistral(int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab) =>
        new("MistralForCausalLM", "mistral", hidden, layers, heads, kvHeads, intermediate, vocab);

    public static RandomModelSpec Qwen2(int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab) =>
        new("Qwen2ForCausalLM", "qwen2", hidden, layers, heads, kvHeads, intermediate, vocab)
        { QkvBias = true, TieWordEmbeddings = true, RmsNormEps = 1e-6, RopeTheta = 1_000_000 };

    public static RandomModelSpec Qwen3(int hidden, int layers, int heads, int kvHeads, int headDim, int intermediate, int vocab) =>
        new("Qwen3ForCausalLM", "qwen3", hidden, layers, heads, kvHeads, intermediate, vocab)
        { HeadDim = headDim, QkNorm = true, TieWordEmbeddings = true, RmsNormEps = 1e-6, RopeTheta = 1_000_000 };

    // Tiny shapes for unit tests: a few hundred KB, every architectural feature present.
    public static RandomModelSpec TinyLlama => Llama(64, 2, 4, 2, 160, 256);
    public static RandomModelSpec TinyMistral => Mistral(64, 2, 4, 2, 160, 256);
    public static RandomModelSpec TinyQwen2 => Qwen2(64, 2, 4, 2, 160, 256);
    /// <summary>head_dim 32 with 4 heads over hidden 64: q is wider than the hidden state, as in real Qwen3 models.</summary>
    public static RandomModelSpec TinyQwen3 => Qwen3(64, 2, 4, 2, 32, 160, 256);

    /// <summary>Qwen2.5-0.5B's shapes (494M parameters, tied embeddings, q/k/v bias).</summary>
    public static RandomModelSpec Qwen2_0_5B => Qwen2(896, 24, 14, 2, 4864, 151936) with { MaxPositionEmbeddings = 32768 };

    /// <summary>Llama-3.2-1B's shapes (1.24B parameters, tied embeddings).</summary>
    public static RandomModelSpec Llama1B => Llama(2048, 16, 32, 8, 8192, 128256) with
        { HeadDim = 64, TieWordEmbeddings = true, RopeTheta = 500000, MaxPositionEmbeddings = 131072 };
}
