using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Quantization;

/// <summary>
/// Per-slot minima and maxima when every slot lies within one row (channel, group, tensor_group — no g_idx): rows in
/// parallel, each row's groups reduced in place with no call per slot (NVFP4's 16-wide groups are two Vector256 each).
/// Equal to the general path of <see cref="Observers.SlotMinMax"/>, which the tests compare with: a slot's min and max as
/// <see cref="TensorPrimitives.Min(ReadOnlySpan{float})"/> / <c>Max</c> give them (independent of the order of reduction),
/// and a slot holding a NaN reported as (+∞, −∞), like a slot no value has reached — which later yields a zero range.
/// </summary>
static class SlotMinMaxKernels
{
    public static unsafe void RowSlots(ReadOnlySpan<float> weight, QParams qp, Span<float> mins, Span<float> maxs)
    {
        int cols = qp.Cols, gs = qp.ColsPerSlot, perRow = qp.ScaleCols;
        fixed (float* w = weight)
        fixed (float* lo = mins)
        fixed (float* hi = maxs)
        {
            float* wp = w, lp = lo, hp = hi;
            FakeQuant.ForRowChunks(qp.Rows, cols, r =>
            {
                var row = new ReadOnlySpan<float>(wp + (long)r * cols, cols);
                for (int s = 0, c0 = 0; s < perRow; s++, c0 += gs)
                {
                    var (mn, mx) = MinMax(row.Slice(c0, Math.Min(gs, cols - c0)));
                    lp[(long)r * perRow + s] = mn;
                    hp[(long)r * perRow + s] = mx;
                }
            });
        }
    }

    /// <summary>Min and max of a non-empty run; (+∞, −∞) when it holds a NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i;
        float mn, mx;
        bool nan;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var a = Vector256.LoadUnsafe(ref p);
            var (b, ok) = (a, Vector256.Equals(a, a));
            for (i = 8; i + 8 <= n; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref p, (nuint)i);
                a = Vector256.Min(a, v);
                b = Vector256.Max(b, v);
                ok &= Vector256.Equals(v, v);
            }
            (mn, mx, nan) = (Min(a), Max(b), !Vector256.EqualsAll(ok.AsInt32(), Vector256<int>.AllBitsSet));
        }
        else
            (mn, mx, nan, i) = (x[0], x[0], float.IsNaN(x[0]), 1);
        for (; i < n; i++)
        {
            mn = MathF.Min(mn, x[i]);
            mx = MathF.Max(mx, x[i]);
            nan |= float.IsNaN(x[i]);
        }
        return nan ? (float.PositiveInfinity, float.NegativeInfinity) : (mn, mx);
    }

    static float Min(Vector256<float> v)
    {
        var h = Vector128.Min(v.GetLower(), v.GetUpper());
        return MathF.Min(MathF.Min(h[0], h[1]), MathF.Min(h[2], h[3]));
    }

    static float Max(Vector256<float> v)
    {
        var h = Vector128.Max(v.GetLower(), v.GetUpper());
        return MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
    }
}
