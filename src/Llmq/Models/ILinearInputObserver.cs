namespace Llmq.Models;

/// <summary>Sees the input of every Linear of a decoder layer while <see cref="DecoderModel.ForwardLayer"/> runs: what
/// calibration (GPTQ Hessians, AWQ and SmoothQuant statistics, imatrix) accumulates.</summary>
public interface ILinearInputObserver
{
    /// <summary><paramref name="input"/>[rows × cols] is what <paramref name="linearName"/> (its Hugging Face name without
    /// <c>.weight</c>, e.g. <c>model.layers.3.mlp.down_proj</c>) multiplies; rows = batch · seqLen, cols = its in-features.
    /// q/k/v (and gate/up) share one input, reported once per name. The span is only valid during the call.</summary>
    void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols);
}
