namespace Llmq.Checkpoints;

/// <summary>Named float32 weights: a safetensors <see cref="Checkpoint"/>, or anything that can produce tensors on demand
/// (dequantized weights, weights held in memory) for the forward pass.</summary>
public interface ITensorSource
{
    bool Contains(string name);
    long[] Shape(string name);
    /// <summary>Fills <paramref name="destination"/> (exactly the tensor's element count) with the tensor as float32.</summary>
    void ReadFloat32(string name, Span<float> destination);
}
