using Llmq.Models;

namespace Llmq.Evaluation;

/// <summary>A causal language model seen only through its next-token logits, which is all perplexity and KL need.</summary>
public interface ILogitsModel
{
    int VocabSize { get; }

    /// <summary>Runs <paramref name="batch"/> independent samples of <paramref name="seqLen"/> tokens (concatenated in
    /// <paramref name="tokens"/>); the logits are then read a few rows at a time from the result, so a large
    /// vocabulary never needs batch · seqLen · vocab floats at once.</summary>
    ILogitsBatch Run(ReadOnlySpan<int> tokens, int batch, int seqLen);
}

/// <summary>The state after a forward pass, from which logits are computed on demand.</summary>
public interface ILogitsBatch : IDisposable
{
    /// <summary>Logits [rows × vocab] of token positions firstRow .. firstRow + rows − 1 (position = sample · seqLen + t).</summary>
    void Logits(int firstRow, int rows, Span<float> logits);
}

/// <summary><see cref="ILogitsModel"/> over the runtime's <see cref="DecoderModel"/>: embed, every layer, then the head per
/// chunk of rows. Layer weights are kept in memory across batches when they fit in <paramref name="cacheBytes"/>
/// (otherwise reloaded, i.e. re-read or re-dequantized, for every batch).</summary>
public sealed class DecoderLogitsModel(DecoderModel model, long cacheBytes = 4L << 30) : ILogitsModel
{
    readonly DecoderLayerWeights?[] _layers = new DecoderLayerWeights?[model.LayerCount];
    readonly bool _cache = LayerBytes(model) * model.LayerCount <= cacheBytes;

    public int VocabSize => model.VocabSize;

    public ILogitsBatch Run(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        var hidden = model.Embed(tokens);
        for (int i = 0; i < model.LayerCount; i++)
        {
            var weights = _layers[i] ?? model.LoadLayer(i);
            if (_cache)
                _layers[i] = weights;
            model.ForwardLayer(weights, hidden, batch, seqLen);
        }
        return new Batch(model, hidden);
    }

    static long LayerBytes(DecoderModel m)
    {
        long q = (long)m.Heads * m.HeadDim, kv = (long)m.KvHeads * m.HeadDim;
        return 4 * ((long)m.HiddenSize * (2 * q + 2 * kv) + 3L * m.HiddenSize * m.IntermediateSize);
    }

    sealed class Batch(DecoderModel model, float[] hidden) : ILogitsBatch
    {
        public void Logits(int firstRow, int rows, Span<float> logits) =>
            model.Head(hidden.AsSpan(firstRow * model.HiddenSize, rows * model.HiddenSize), rows, logits);

        public void Dispose() { }
    }
}
