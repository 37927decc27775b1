using System.Numerics.Tensors;

namespace Llmq.Models;

/// <summary>RMSNorm as Llama-family models compute it in float32: <c>y = x · w / sqrt(mean(x²) + eps)</c>.</summary>
public static class RmsNorm
{
    /// <summary>One vector; <paramref name="y"/> may be <paramref name="x"/> itself.</summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, float eps)
    {
        float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(x) / x.Length + eps);
        TensorPrimitives.Multiply(x, inv, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>Every row of <paramref name="x"/>[rows × weight.Length] into <paramref name="y"/> (same shape), rows in parallel.</summary>
    public static void Rows(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, float eps)
    {
        int cols = weight.Length;
        if (x.Length < rows * cols || y.Length < rows * cols) throw new ArgumentException("x or y is shorter than rows × cols");
        unsafe
        {
            fixed (float* px = x, pw = weight, py = y)
            {
                nint xp = (nint)px, wp = (nint)pw, yp = (nint)py;
                Parallelism.ForChunks(rows, 16, (start, end) =>
                {
                    var w = new ReadOnlySpan<float>((float*)wp, cols);
                    for (int r = start; r < end; r++)
                        Apply(new ReadOnlySpan<float>((float*)xp + (long)r * cols, cols), w,
                              new Span<float>((float*)yp + (long)r * cols, cols), eps);
                });
            }
        }
    }
}
