using Llmq.Models;

namespace Llmq.Formats.Gguf;

/// <summary>Computes an importance matrix from our own calibration pass, as llama-imatrix does: every Linear of every
/// decoder layer accumulates Σx² per input column and its token count. Runs layer by layer over all samples
/// (one layer's weights and the hidden states in memory).</summary>
public static class ImatrixCollector
{
    public static ImportanceMatrix Compute(DecoderModel model, int[][] samples, string datasetName, IProgress<string>? progress = null)
    {
        if (samples.Length == 0) throw new LlmqException("imatrix calibration needs at least one sample");
        int seqLen = samples.Max(s => s.Length);
        var matrix = new ImportanceMatrix { Datasets = [datasetName], ChunkCount = samples.Length, ChunkSize = seqLen };
        var observer = new Observer(matrix);
        // each sample runs as its own batch of one, so ragged samples need no padding
        var hidden = samples.Select(s => model.Embed(s)).ToArray();
        DecoderLayerWeights? layer = null;
        for (int i = 0; i < model.LayerCount; i++)
        {
            progress?.Report($"imatrix: layer {i + 1}/{model.LayerCount}");
            layer = model.LoadLayer(i, layer);
            for (int s = 0; s < samples.Length; s++)
                model.ForwardLayer(layer, hidden[s], 1, samples[s].Length, observer);
        }
        return matrix;
    }

    sealed class Observer(ImportanceMatrix matrix) : ILinearInputObserver
    {
        public void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols)
        {
            var name = GgufTensorNames.ToGguf(linearName + ".weight", out _);
            if (name is not null) matrix.Accumulate(name, input, rows, cols);
        }
    }
}
