namespace Llmq.Models;

/// <summary>Float32 copies of one decoder layer's tensors (<c>model.layers.{i}.*</c>). The seven Linear weights are
/// views that calibration may overwrite (e.g. with quantized-then-dequantized values) before the layer runs again.
/// q/k/v and gate/up are stored side by side so each group is one GEMM; that stays invisible behind <see cref="Weight"/>.</summary>
public sealed class DecoderLayerWeights
{
    /// <summary>The Linear suffixes in the order a layer applies them, as Hugging Face names them.</summary>
    public static IReadOnlyList<string> LinearSuffixes { get; } =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    readonly (float[] Buffer, int Offset, int Rows, int Cols)[] _linears;
    string[] _names;

    public int Index { get; private set; }

    /// <summary>The model whose shapes these buffers have; only it may reload them.</summary>
    internal object Owner { get; }

    /// <summary>Full Hugging Face names of this layer's Linears (without <c>.weight</c>), in <see cref="LinearSuffixes"/> order.</summary>
    public IReadOnlyList<string> LinearNames => _names;

    internal float[] InputNorm { get; }          // [hidden]  input_layernorm.weight
    internal float[] PostAttentionNorm { get; }  // [hidden]  post_attention_layernorm.weight
    internal float[]? QNorm { get; }             // [headDim] self_attn.q_norm.weight (Qwen3)
    internal float[]? KNorm { get; }             // [headDim] self_attn.k_norm.weight (Qwen3)
    internal float[] Qkv { get; }                // [(q + 2·kv) × hidden] q_proj rows, then k_proj, then v_proj
    internal float[]? QkvBias { get; }           // [q + 2·kv]
    internal float[] O { get; }                  // [hidden × q]
    internal float[]? OBias { get; }             // [hidden]
    internal float[] GateUp { get; }             // [2·intermediate × hidden] gate_proj rows, then up_proj
    internal float[] Down { get; }               // [hidden × intermediate]

    internal DecoderLayerWeights(object owner, int index, int hidden, int qDim, int kvDim, int intermediate, int headDim,
        bool qkNorm, bool qkvBias, bool oBias)
    {
        Owner = owner;
        Rename(index);
        InputNorm = new float[hidden];
        PostAttentionNorm = new float[hidden];
        QNorm = qkNorm ? new float[headDim] : null;
        KNorm = qkNorm ? new float[headDim] : null;
        Qkv = new float[(long)(qDim + 2 * kvDim) * hidden];
        QkvBias = qkvBias ? new float[qDim + 2 * kvDim] : null;
        O = new float[(long)hidden * qDim];
        OBias = oBias ? new float[hidden] : null;
        GateUp = new float[2L * intermediate * hidden];
        Down = new float[(long)hidden * intermediate];
        _linears =
        [
            (Qkv, 0, qDim, hidden),
            (Qkv, qDim * hidden, kvDim, hidden),
            (Qkv, (qDim + kvDim) * hidden, kvDim, hidden),
            (O, 0, hidden, qDim),
            (GateUp, 0, intermediate, hidden),
            (GateUp, intermediate * hidden, intermediate, hidden),
            (Down, 0, hidden, intermediate),
        ];
    }

    /// <summary>Points these buffers at another layer before its tensors are read into them.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(_names))]
    internal void Rename(int index)
    {
        Index = index;
        _names = LinearSuffixes.Select(s => $"model.layers.{index}.{s}").ToArray();
    }

    /// <summary>The weight [out-features × in-features] of a Linear, by full name (<c>model.layers.3.mlp.up_proj</c>)
    /// or suffix (<c>mlp.up_proj</c>); writes through to what <see cref="DecoderModel.ForwardLayer"/> uses.</summary>
    public Span<float> Weight(string linearName)
    {
        var (buffer, offset, rows, cols) = _linears[Slot(linearName)];
        return buffer.AsSpan(offset, rows * cols);
    }

    /// <summary>(out-features, in-features) of a Linear.</summary>
    public (int Rows, int Cols) WeightShape(string linearName)
    {
        var l = _linears[Slot(linearName)];
        return (l.Rows, l.Cols);
    }

    /// <summary>Replaces a Linear's weight, e.g. with its quantized-then-dequantized values.</summary>
    public void SetWeight(string linearName, ReadOnlySpan<float> weight)
    {
        var target = Weight(linearName);
        if (weight.Length != target.Length)
            throw new ArgumentException($"{linearName} has {target.Length} weights, got {weight.Length}", nameof(weight));
        weight.CopyTo(target);
    }

    /// <summary>The bias slice of a Linear, or an empty span when it has none (used while loading).</summary>
    internal Span<float> Bias(int slot) => slot switch
    {
        < 3 when QkvBias is not null => QkvBias.AsSpan(_linears[slot].Offset / _linears[slot].Cols, _linears[slot].Rows),
        3 when OBias is not null => OBias,
        _ => [],
    };

    internal int Slot(string linearName)
    {
        for (int i = 0; i < _names.Length; i++)
            if (linearName == _names[i] || linearName == LinearSuffixes[i]) return i;
        throw new ArgumentException($"layer {Index} has no Linear '{linearName}' (its Linears: {string.Join(", ", _names)})", nameof(linearName));
    }
}
