using System.Buffers;
using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Numerics;

namespace Llmq.Models;

/// <summary>
/// Forward pass of a Llama-family decoder (see <see cref="DecoderArchitecture"/>) in float32, over a batch of
/// equal-length samples at once (positions restart at 0 in every sample, no padding, no KV cache).
/// The per-layer API is what calibration drives: <see cref="Embed"/> once, then for each layer <see cref="LoadLayer"/>,
/// <see cref="ForwardLayer"/> (observing every Linear's input), then <see cref="Head"/>. Only one layer's weights need to be
/// in memory; the embedding and lm_head are read once, on first use.
/// Hidden states are row-major [batch · seqLen × hidden].
/// </summary>
public sealed class DecoderModel : IDisposable
{
    readonly ITensorSource _weights;
    readonly IDisposable? _owned;
    readonly string _sourceName;
    readonly Lazy<float[]> _embed;      // [vocab × hidden] model.embed_tokens.weight
    readonly Lazy<float[]> _lmHead;     // [vocab × hidden] lm_head.weight, or the embedding when tied
    readonly Lazy<float[]> _finalNorm;  // [hidden] model.norm.weight

    public ModelConfig Config { get; }
    public DecoderArchitecture Architecture { get; }
    public RotaryEmbedding Rope { get; }
    public int HiddenSize { get; }
    public int LayerCount { get; }
    public int Heads { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int IntermediateSize { get; }
    public int VocabSize { get; }
    public float RmsNormEps { get; }
    /// <summary>Keys a query may look back over (0: unlimited).</summary>
    public int SlidingWindow { get; }
    bool QkvBias { get; }
    bool OBias { get; }

    /// <summary>Opens a Hugging Face model directory (config.json + safetensors); the model owns the checkpoint.</summary>
    public static DecoderModel Open(string dir)
    {
        var config = ModelConfig.Load(dir);
        var checkpoint = Checkpoint.Open(dir);
        try
        {
            return new DecoderModel(checkpoint, config, dir, checkpoint);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>A model over any weight source, e.g. tensors dequantized on load; <paramref name="sourceName"/> names it in errors.
    /// The caller keeps ownership of <paramref name="weights"/>.</summary>
    public DecoderModel(ITensorSource weights, ModelConfig config, string sourceName = "weights")
        : this(weights, config, sourceName, null) { }

    DecoderModel(ITensorSource weights, ModelConfig config, string sourceName, IDisposable? owned)
    {
        _weights = weights;
        _owned = owned;
        _sourceName = sourceName;
        Config = config;
        Architecture = DecoderArchitecture.For(config);
        if (config.HiddenAct != "silu") throw new LlmqException($"config.json: hidden_act '{config.HiddenAct}' is not supported (only silu)");
        if (config.Json["mlp_bias"] is JsonValue mlpBias && mlpBias.GetValue<bool>())
            throw new LlmqException("config.json: mlp_bias true is not supported");
        HiddenSize = config.HiddenSize;
        LayerCount = config.NumHiddenLayers;
        Heads = config.NumAttentionHeads;
        KvHeads = config.NumKeyValueHeads;
        HeadDim = config.HeadDim;
        IntermediateSize = config.IntermediateSize;
        VocabSize = config.VocabSize;
        RmsNormEps = (float)config.RmsNormEps;
        if (Heads <= 0 || KvHeads <= 0 || Heads % KvHeads != 0)
            throw new LlmqException($"config.json: num_attention_heads {Heads} is not a positive multiple of num_key_value_heads {KvHeads}");
        bool attentionBias = Architecture.AttentionBiasFromConfig && config.AttentionBias;
        QkvBias = Architecture.QkvBias || attentionBias;
        OBias = attentionBias;
        SlidingWindow = Architecture.SlidingWindowFromConfig && config.Json["sliding_window"] is JsonValue w ? w.GetValue<int>() : 0;
        Rope = RotaryEmbedding.For(config, HeadDim);

        _embed = new(() => Read("model.embed_tokens.weight", VocabSize, HiddenSize));
        _lmHead = new(() => config.TieWordEmbeddings || !weights.Contains("lm_head.weight")
            ? _embed.Value : Read("lm_head.weight", VocabSize, HiddenSize));
        _finalNorm = new(() => Read("model.norm.weight", HiddenSize));
    }

    /// <summary>Hidden states [tokens × hidden]: the embedding rows of <paramref name="tokens"/>.</summary>
    public float[] Embed(ReadOnlySpan<int> tokens)
    {
        var hidden = new float[(long)tokens.Length * HiddenSize];
        // From a checkpoint, only the rows the tokens use are read: calibration then never holds the whole table in float32
        // (1 GB for a 128K vocabulary), nor maps all of its pages.
        var checkpoint = _embed.IsValueCreated ? null : _weights as Checkpoint;
        const string name = "model.embed_tokens.weight";
        if (checkpoint is not null && !_weights.Shape(name).SequenceEqual([(long)VocabSize, HiddenSize])) checkpoint = null; // Read reports it
        var table = checkpoint is null ? _embed.Value : null;
        for (int t = 0; t < tokens.Length; t++)
        {
            int id = tokens[t];
            if ((uint)id >= (uint)VocabSize)
                throw new LlmqException($"token id {id} is outside the vocabulary [0, {VocabSize})");
            var row = hidden.AsSpan(t * HiddenSize, HiddenSize);
            if (checkpoint is not null) checkpoint.ReadFloat32(name, (long)id * HiddenSize, row);
            else table.AsSpan(id * HiddenSize, HiddenSize).CopyTo(row);
        }
        return hidden;
    }

    /// <summary>Float32 copies of layer <paramref name="index"/>'s weights, checked against the config's shapes.
    /// Passing an earlier result of this model as <paramref name="reuse"/> overwrites its buffers instead of allocating
    /// (a layer is tens to hundreds of MB: fresh memory costs page faults and GC work on every layer).</summary>
    public DecoderLayerWeights LoadLayer(int index, DecoderLayerWeights? reuse = null)
    {
        if ((uint)index >= (uint)LayerCount) throw new ArgumentOutOfRangeException(nameof(index), $"the model has {LayerCount} layers");
        if (reuse is not null && reuse.Owner != this)
            throw new ArgumentException("the layer weights to reuse come from another model", nameof(reuse));
        int qDim = Heads * HeadDim, kvDim = KvHeads * HeadDim;
        var w = reuse ?? new DecoderLayerWeights(this, index, HiddenSize, qDim, kvDim, IntermediateSize, HeadDim,
            Architecture.QkNorm, QkvBias, OBias);
        w.Rename(index);
        var prefix = $"model.layers.{index}.";
        ReadInto(prefix + "input_layernorm.weight", w.InputNorm, HiddenSize);
        ReadInto(prefix + "post_attention_layernorm.weight", w.PostAttentionNorm, HiddenSize);
        if (w.QNorm is not null) ReadInto(prefix + "self_attn.q_norm.weight", w.QNorm, HeadDim);
        if (w.KNorm is not null) ReadInto(prefix + "self_attn.k_norm.weight", w.KNorm, HeadDim);
        for (int slot = 0; slot < DecoderLayerWeights.LinearSuffixes.Count; slot++)
        {
            var name = w.LinearNames[slot];
            var (rows, cols) = w.WeightShape(name);
            ReadInto(name + ".weight", w.Weight(name), rows, cols);
            var bias = w.Bias(slot);
            if (!bias.IsEmpty) ReadInto(name + ".bias", bias, rows);
        }
        return w;
    }

    /// <summary>Most tokens per pass through a layer without an observer: enough rows for every GEMM to run at full speed.</summary>
    internal const int ChunkTokens = 4096;

    /// <summary>Scratch floats one such pass may hold (256 MB), which lowers the chunk for wide models.</summary>
    const long ScratchBudget = 64L << 20;

    /// <summary>
    /// Runs one decoder layer in place over <paramref name="hidden"/>[batch · seqLen × hidden]:
    /// <c>h += o_proj(attention(rope(q,k), v))</c> on the input-normed states, then <c>h += down_proj(silu(gate) · up)</c>
    /// on the post-attention-normed states.
    /// With an <paramref name="observer"/> the whole batch runs in one pass, so each Linear's input is observed exactly once
    /// per call, all batch · seqLen rows at once (calibration sizes its batches; scratch is about
    /// batch · seqLen · (3 · intermediate + 4 · hidden) floats). Without one, large batches run a few samples at a time.
    /// </summary>
    public void ForwardLayer(DecoderLayerWeights w, Span<float> hidden, int batch, int seqLen, ILinearInputObserver? observer = null) =>
        ForwardLayer(w, hidden, batch, seqLen, observer, inputsOnly: false);

    void ForwardLayer(DecoderLayerWeights w, Span<float> hidden, int batch, int seqLen, ILinearInputObserver? observer, bool inputsOnly)
    {
        long needed = (long)batch * seqLen * HiddenSize;
        if (batch <= 0 || seqLen <= 0) throw new ArgumentOutOfRangeException(nameof(batch), "batch and seqLen must be positive");
        if (hidden.Length < needed)
            throw new ArgumentException($"hidden holds {hidden.Length} floats, fewer than batch·seqLen·hidden = {needed}", nameof(hidden));
        if ((long)batch * seqLen * 2 * IntermediateSize > Array.MaxLength)
            throw new ArgumentException($"{batch} × {seqLen} tokens are too many for one pass; run fewer samples per call", nameof(batch));
        Rope.EnsurePositions(seqLen);
        long scratchPerToken = HiddenSize + 2L * (Heads + 2 * KvHeads) * HeadDim + Heads * HeadDim + 3L * IntermediateSize;
        int chunkTokens = (int)Math.Min(ChunkTokens, ScratchBudget / scratchPerToken);
        // equal chunks (8 samples in two chunks of 4, not 7 + 1): a small last chunk runs its GEMMs far below full speed
        int maxChunk = Math.Max(1, Math.Min(batch, chunkTokens / seqLen)), pieces = (batch + maxChunk - 1) / maxChunk;
        int chunk = observer is null ? (batch + pieces - 1) / pieces : batch;
        using var buffers = new LayerBuffers(chunk * seqLen, HiddenSize, Heads * HeadDim, KvHeads * HeadDim, IntermediateSize);
        for (int s0 = 0; s0 < batch; s0 += chunk)
        {
            int samples = Math.Min(chunk, batch - s0);
            ForwardChunk(w, hidden.Slice(s0 * seqLen * HiddenSize, samples * seqLen * HiddenSize), samples, seqLen, observer, buffers, inputsOnly);
        }
    }

    /// <summary>Runs the layer only as far as <paramref name="observer"/> needs: every Linear's input is observed, but the
    /// last product (down_proj), whose output only the next layer would see, is skipped. <paramref name="hidden"/> is
    /// used as scratch and left undefined — a calibration pass whose outputs are discarded.</summary>
    public void ObserveLinearInputs(DecoderLayerWeights w, Span<float> hidden, int batch, int seqLen, ILinearInputObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        ForwardLayer(w, hidden, batch, seqLen, observer, inputsOnly: true);
    }

    void ForwardChunk(DecoderLayerWeights w, Span<float> hidden, int batch, int seqLen, ILinearInputObserver? observer, LayerBuffers b,
        bool inputsOnly)
    {
        int tokens = batch * seqLen, h = HiddenSize, inter = IntermediateSize;
        int qDim = Heads * HeadDim, kvDim = KvHeads * HeadDim, qkvDim = qDim + 2 * kvDim;
        var names = w.LinearNames;
        var normed = b.Normed.AsSpan(0, tokens * h);

        RmsNorm.Rows(hidden, w.InputNorm, normed, tokens, RmsNormEps);
        for (int i = 0; i < 3; i++) observer?.Observe(names[i], normed, tokens, h);
        Gemm.MatMulTransposeB(normed, w.Qkv, b.Qkv.AsSpan(0, tokens * qkvDim), tokens, qkvDim, h);
        if (w.QkvBias is not null) AddRowBias(b.Qkv, w.QkvBias, tokens);
        SplitHeads(w, b.Qkv, b.Q, b.K, b.V, batch, seqLen);
        CausalAttention.Forward(b.Q, b.K, b.V, b.Attention, batch, seqLen, Heads, KvHeads, HeadDim, SlidingWindow);

        var attention = b.Attention.AsSpan(0, tokens * qDim);
        observer?.Observe(names[3], attention, tokens, qDim);
        Gemm.MatMulTransposeB(attention, w.O, hidden, tokens, h, qDim, accumulate: true); // the residual add for free
        if (w.OBias is not null) AddRowBias(hidden, w.OBias, tokens);

        RmsNorm.Rows(hidden, w.PostAttentionNorm, normed, tokens, RmsNormEps);
        for (int i = 4; i < 6; i++) observer?.Observe(names[i], normed, tokens, h);
        Gemm.MatMulTransposeB(normed, w.GateUp, b.GateUp.AsSpan(0, tokens * 2 * inter), tokens, 2 * inter, h);
        SwiGlu.Rows(b.GateUp, b.Act, tokens, inter);
        var act = b.Act.AsSpan(0, tokens * inter);
        observer?.Observe(names[6], act, tokens, inter);
        if (!inputsOnly) Gemm.MatMulTransposeB(act, w.Down, hidden, tokens, h, inter, accumulate: true);
    }

    /// <summary>Scratch for one chunk of tokens, rented from the shared pool so repeated layers reuse it.</summary>
    sealed class LayerBuffers(int tokens, int hidden, int qDim, int kvDim, int intermediate) : IDisposable
    {
        public readonly float[] Normed = Rent(tokens * hidden);                      // [tokens × hidden]
        public readonly float[] Qkv = Rent(tokens * (qDim + 2 * kvDim));              // [tokens × (q + 2·kv)]
        public readonly float[] Q = Rent(tokens * qDim);                              // [batch × heads × seqLen × headDim]
        public readonly float[] K = Rent(tokens * kvDim);                             // [batch × kvHeads × seqLen × headDim]
        public readonly float[] V = Rent(tokens * kvDim);                             // [batch × kvHeads × seqLen × headDim]
        public readonly float[] Attention = Rent(tokens * qDim);                      // [tokens × heads · headDim]
        public readonly float[] GateUp = Rent(tokens * 2 * intermediate);             // [tokens × 2·intermediate]
        public readonly float[] Act = Rent(tokens * intermediate);                    // [tokens × intermediate]

        static float[] Rent(int length) => ArrayPool<float>.Shared.Rent(length);

        public void Dispose()
        {
            foreach (var buffer in (float[][])[Normed, Qkv, Q, K, V, Attention, GateUp, Act]) ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>Logits [rows × vocab] of hidden states [rows × hidden]: final RMSNorm, then lm_head (or the tied embedding).
    /// <paramref name="hidden"/> is left unchanged.</summary>
    public void Head(ReadOnlySpan<float> hidden, int rows, Span<float> logits)
    {
        if (hidden.Length < (long)rows * HiddenSize || logits.Length < (long)rows * VocabSize)
            throw new ArgumentException("hidden or logits is shorter than rows × hidden / rows × vocab");
        var normed = ArrayPool<float>.Shared.Rent(rows * HiddenSize);
        try
        {
            RmsNorm.Rows(hidden, _finalNorm.Value, normed, rows, RmsNormEps);
            Gemm.MatMulTransposeB(normed.AsSpan(0, rows * HiddenSize), _lmHead.Value, logits[..(rows * VocabSize)], rows, VocabSize, HiddenSize);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(normed);
        }
    }

    /// <summary>Logits [rows × vocab], newly allocated.</summary>
    public float[] Head(ReadOnlySpan<float> hidden, int rows)
    {
        var logits = new float[checked(rows * VocabSize)];
        Head(hidden, rows, logits);
        return logits;
    }

    /// <summary>Whole forward of <paramref name="batch"/> samples of <paramref name="seqLen"/> tokens (concatenated in
    /// <paramref name="tokens"/>): logits [batch · seqLen × vocab]. Loads one layer at a time.</summary>
    public float[] Forward(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        if (tokens.Length != (long)batch * seqLen)
            throw new ArgumentException($"{tokens.Length} tokens are not {batch} samples of {seqLen}", nameof(tokens));
        if ((long)tokens.Length * VocabSize > Array.MaxLength)
            throw new LlmqException($"{tokens.Length} tokens × vocabulary {VocabSize} logits do not fit one array; run fewer tokens at a time");
        var hidden = Embed(tokens);
        DecoderLayerWeights? layer = null;
        for (int i = 0; i < LayerCount; i++) ForwardLayer(layer = LoadLayer(i, layer), hidden, batch, seqLen);
        return Head(hidden, tokens.Length);
    }

    /// <summary>One sample.</summary>
    public float[] Forward(ReadOnlySpan<int> tokens) => Forward(tokens, 1, tokens.Length);

    public void Dispose() => _owned?.Dispose();

    /// <summary>qkv [tokens × (q + 2·kv)] → per-head q, k, v [batch × heads × seqLen × headDim], with q/k RMSNorm
    /// (Qwen3), RoPE on q and k, and the softmax scale 1/√headDim folded into q.</summary>
    void SplitHeads(DecoderLayerWeights w, float[] qkv, float[] q, float[] k, float[] v, int batch, int seqLen)
    {
        int hd = HeadDim, heads = Heads, kvHeads = KvHeads;
        int qkvDim = (heads + 2 * kvHeads) * hd;
        float scale = 1f / MathF.Sqrt(hd), eps = RmsNormEps;
        Parallelism.ForChunks(batch * seqLen, 16, (start, end) =>
        {
            for (int t = start; t < end; t++)
            {
                int b = t / seqLen, p = t % seqLen;
                var row = qkv.AsSpan(t * qkvDim, qkvDim);
                for (int head = 0; head < heads; head++)
                {
                    var dst = q.AsSpan((((b * heads) + head) * seqLen + p) * hd, hd);
                    row.Slice(head * hd, hd).CopyTo(dst);
                    if (w.QNorm is not null) RmsNorm.Apply(dst, w.QNorm, dst, eps);
                    Rope.Rotate(dst, p);
                    TensorPrimitives.Multiply(dst, scale, dst);
                }
                for (int head = 0; head < kvHeads; head++)
                {
                    int at = (((b * kvHeads) + head) * seqLen + p) * hd;
                    var dst = k.AsSpan(at, hd);
                    row.Slice((heads + head) * hd, hd).CopyTo(dst);
                    if (w.KNorm is not null) RmsNorm.Apply(dst, w.KNorm, dst, eps);
                    Rope.Rotate(dst, p);
                    row.Slice((heads + kvHeads + head) * hd, hd).CopyTo(v.AsSpan(at, hd));
                }
            }
        });
    }

    static unsafe void AddRowBias(Span<float> x, float[] bias, int rows)
    {
        int cols = bias.Length;
        fixed (float* px = x)
        {
            nint xp = (nint)px;
            Parallelism.ForChunks(rows, 64, (start, end) =>
            {
                for (int r = start; r < end; r++)
                {
                    var row = new Span<float>((float*)xp + (long)r * cols, cols);
                    TensorPrimitives.Add(row, bias, row);
                }
            });
        }
    }

    float[] Read(string name, params int[] shape)
    {
        var data = new float[shape.Aggregate(1L, (a, d) => a * d)];
        ReadInto(name, data, shape);
        return data;
    }

    void ReadInto(string name, Span<float> destination, params int[] shape)
    {
        if (!_weights.Contains(name)) throw new InvalidCheckpointException(_sourceName, name, "is missing");
        var actual = _weights.Shape(name);
        if (!actual.SequenceEqual(shape.Select(d => (long)d)))
            throw new InvalidCheckpointException(_sourceName, name,
                $"has shape [{string.Join(", ", actual)}] but config.json implies [{string.Join(", ", shape)}]");
        _weights.ReadFloat32(name, destination);
    }
}
