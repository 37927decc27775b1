namespace Llmq.Checkpoints;

/// <summary>One tensor of a safetensors checkpoint: its header entry, validated.
/// <paramref name="DataOffset"/> is the absolute byte offset of its data in <paramref name="File"/>.</summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, string File, long DataOffset, long ByteLength)
{
    public long ElementCount { get; } = ElementsOf(Shape);

    /// <summary>Product of the dimensions (1 for a scalar); throws OverflowException past long.</summary>
    public static long ElementsOf(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
            count = checked(count * d);
        return count;
    }

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
