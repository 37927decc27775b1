using System.Numerics.Tensors;

namespace Llmq.Models;

/// <summary>The gated activation of Llama-family MLPs: <c>act = silu(gate) · up</c>, <c>silu(g) = g · sigmoid(g)</c>.</summary>
public static class SwiGlu
{
    /// <summary>One row: <paramref name="act"/> may not overlap the inputs.</summary>
    public static void Apply(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> act)
    {
        TensorPrimitives.Sigmoid(gate, act);
        TensorPrimitives.Multiply(act, gate, act);
        TensorPrimitives.Multiply(act, up, act);
    }

    /// <summary><paramref name="gateUp"/>[rows × 2I] holds each row's gate (first I columns) then up;
    /// writes <paramref name="act"/>[rows × I], rows in parallel.</summary>
    public static void Rows(ReadOnlySpan<float> gateUp, Span<float> act, int rows, int intermediate)
    {
        if (gateUp.Length < (long)rows * 2 * intermediate || act.Length < (long)rows * intermediate)
            throw new ArgumentException("gateUp or act is shorter than its shape");
        unsafe
        {
            fixed (float* pg = gateUp, pa = act)
            {
                nint gp = (nint)pg, ap = (nint)pa;
                Parallelism.ForChunks(rows, 8, (start, end) =>
                {
                    for (int r = start; r < end; r++)
                    {
                        float* row = (float*)gp + (long)r * 2 * intermediate;
                        Apply(new ReadOnlySpan<float>(row, intermediate), new ReadOnlySpan<float>(row + intermediate, intermediate),
                              new Span<float>((float*)ap + (long)r * intermediate, intermediate));
                    }
                });
            }
        }
    }
}
