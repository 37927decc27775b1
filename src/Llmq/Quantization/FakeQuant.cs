using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Llmq.Numerics;

namespace Llmq.Quantization;

/// <summary>
/// Quantize / dequantize with fixed <see cref="QParams"/> (spec §4.3): <c>t = clamp(x / eff + zp, qmin, qmax)</c>, rounded
/// to the type (int: half to even; fp8: e4m3 RNE; fp4: the E2M1 table), and <c>x̂ = (q − zp) · eff</c>.
/// Codes are one byte per element: int values as two's-complement sbytes, FP8 as e4m3 bytes, FP4 as unpacked 4-bit codes.
/// Rows run in parallel; the per-slot loops are vectorized (<see cref="Reference"/> is the scalar definition they match).
/// </summary>
public static class FakeQuant
{
    /// <summary>Quantizes a [Rows, Cols] weight to codes.</summary>
    public static void Quantize(ReadOnlySpan<float> weight, QParams qp, QuantizationArgs args, Span<byte> codes)
    {
        if (qp.RowsPerSlot == 1 && qp.GroupIndex is null)
            QuantizeRowSlots(weight, qp, args, codes);
        else
            ForSegments(weight, codes, qp, (src, dst, slot) => QuantizeSegment(src, qp.EffectiveScale(slot), qp.ZeroPointOf(slot), args, dst));
    }

    /// <summary><see cref="Quantize"/> when every slot lies within one row (channel, group, tensor_group): one call per row,
    /// not per slot — NVFP4 has a slot every 16 values.</summary>
    static unsafe void QuantizeRowSlots(ReadOnlySpan<float> weight, QParams qp, QuantizationArgs args, Span<byte> codes)
    {
        int cols = qp.Cols, gs = qp.ColsPerSlot, perRow = qp.ScaleCols;
        if (weight.Length != (long)qp.Rows * cols || codes.Length != weight.Length) throw new ArgumentException($"expected {(long)qp.Rows * cols} elements for [{qp.Rows}, {cols}]");
        fixed (float* w = weight)
        fixed (byte* c = codes)
        {
            float* wp = w; byte* cp = c;
            ForRowChunks(qp.Rows, cols, r =>
            {
                var src = new ReadOnlySpan<float>(wp + (long)r * cols, cols);
                var dst = new Span<byte>(cp + (long)r * cols, cols);
                for (int s = 0, c0 = 0, slot = r * perRow; s < perRow; s++, c0 += gs, slot++)
                {
                    int len = Math.Min(gs, cols - c0);
                    QuantizeSegment(src.Slice(c0, len), qp.EffectiveScale(slot), qp.ZeroPointOf(slot), args, dst.Slice(c0, len));
                }
            });
        }
    }

    /// <summary>Dequantizes codes back to a [Rows, Cols] float weight.</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, QParams qp, QuantizationArgs args, Span<float> weight) =>
        ForSegments(codes, weight, qp, (src, dst, slot) => DequantizeSegment(src, qp.EffectiveScale(slot), qp.ZeroPointOf(slot), args, dst));

    /// <summary>Quantize then dequantize (what GPTQ and error measurements need); <paramref name="result"/> may alias <paramref name="weight"/>.</summary>
    public static void QuantizeDequantize(ReadOnlySpan<float> weight, QParams qp, QuantizationArgs args, Span<float> result) =>
        ForSegments(weight, result, qp, (src, dst, slot) =>
        {
            float eff = qp.EffectiveScale(slot), zp = qp.ZeroPointOf(slot);
            Span<byte> tmp = stackalloc byte[Math.Min(src.Length, 4096)];
            for (int done = 0; done < src.Length; done += tmp.Length)
            {
                int n = Math.Min(tmp.Length, src.Length - done);
                QuantizeSegment(src.Slice(done, n), eff, zp, args, tmp[..n]);
                DequantizeSegment(tmp[..n], eff, zp, args, dst.Slice(done, n));
            }
        });

    delegate void SegmentAction<TIn, TOut>(ReadOnlySpan<TIn> src, Span<TOut> dst, int slot);

    /// <summary>Runs <paramref name="action"/> on every run of a row that shares one slot, in both arrays, rows in parallel.</summary>
    static unsafe void ForSegments<TIn, TOut>(ReadOnlySpan<TIn> a, Span<TOut> b, QParams qp, SegmentAction<TIn, TOut> action)
        where TIn : unmanaged where TOut : unmanaged
    {
        long n = (long)qp.Rows * qp.Cols;
        if (a.Length != n || b.Length != n) throw new ArgumentException($"expected {n} elements for [{qp.Rows}, {qp.Cols}]");
        fixed (TIn* pa = a)
        fixed (TOut* pb = b)
        {
            TIn* ap = pa; TOut* bp = pb;
            ForRows(qp, (r, c0, len, slot) =>
            {
                long at = (long)r * qp.Cols + c0;
                action(new ReadOnlySpan<TIn>(ap + at, len), new Span<TOut>(bp + at, len), slot);
            });
        }
    }

    /// <summary>One value's quantize-dequantize (scalar, for column-by-column algorithms such as GPTQ).</summary>
    public static float QuantizeDequantizeValue(float x, float effectiveScale, float zeroPoint, QuantizationArgs args) =>
        (Reference.Grid(x, effectiveScale, zeroPoint, args) - zeroPoint) * effectiveScale;

    /// <summary>Codes of a run of values sharing one scale and zero point.</summary>
    public static void QuantizeSegment(ReadOnlySpan<float> x, float effectiveScale, float zeroPoint, QuantizationArgs args, Span<byte> codes)
    {
        if (args.Type == QuantizationType.Float)
        {
            if (args.NumBits == 8) Float8E4M3.FromFloat32Scaled(x, effectiveScale, codes);
            else Float4E2M1.FromFloat32(x, effectiveScale, codes);
            return;
        }
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var d = Vector256.Create(effectiveScale);
            var z = Vector256.Create(zeroPoint);
            var lo = Vector256.Create(args.QMin);
            var hi = Vector256.Create(args.QMax);
            for (; i + 8 <= x.Length; i += 8)
            {
                var t = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(x), (nuint)i) / d + z;
                var q = Vector256.ConvertToInt32(Vector256.Round(Vector256.Clamp(t, lo, hi)));
                var s = Vector256.Narrow(q, q);
                var b = Vector256.Narrow(s, s);
                MemoryMarshal.Write(codes.Slice(i), b.AsUInt64().GetElement(0));
            }
        }
        for (; i < x.Length; i++)
            codes[i] = (byte)(sbyte)Reference.Grid(x[i], effectiveScale, zeroPoint, args);
    }

    /// <summary>Values of a run of codes sharing one scale and zero point.</summary>
    public static void DequantizeSegment(ReadOnlySpan<byte> codes, float effectiveScale, float zeroPoint, QuantizationArgs args, Span<float> x)
    {
        if (args.Type == QuantizationType.Float)
        {
            if (args.NumBits == 8) for (int i = 0; i < codes.Length; i++) x[i] = Float8E4M3.ToFloat(codes[i]) * effectiveScale;
            else for (int i = 0; i < codes.Length; i++) x[i] = Float4E2M1.ToFloat(codes[i]) * effectiveScale;
            return;
        }
        for (int i = 0; i < codes.Length; i++)
            x[i] = ((sbyte)codes[i] - zeroPoint) * effectiveScale;
    }

    /// <summary>Calls <paramref name="segment"/>(row, firstCol, length, slot) for every run of a row that shares one slot, rows in parallel.</summary>
    internal static void ForRows(QParams qp, Action<int, int, int, int> segment) =>
        ForRowChunks(qp.Rows, qp.Cols, r =>
        {
            if (qp.GroupIndex is not null)
            {
                for (int c = 0; c < qp.Cols; c++) segment(r, c, 1, qp.Slot(r, c));
                return;
            }
            for (int c0 = 0; c0 < qp.Cols; c0 += qp.ColsPerSlot)
                segment(r, c0, Math.Min(qp.ColsPerSlot, qp.Cols - c0), qp.Slot(r, c0));
        });

    /// <summary>Calls <paramref name="row"/> for every row, rows in parallel in chunks of at least 64K elements per task.</summary>
    internal static void ForRowChunks(int rows, int cols, Action<int> row)
    {
        int chunk = Math.Max(1, (int)Math.Min(rows, (1L << 16) / cols + 1));
        Parallel.For(0, (rows + chunk - 1) / chunk, t =>
        {
            for (int r = t * chunk, end = Math.Min(rows, r + chunk); r < end; r++) row(r);
        });
    }

    /// <summary>The scalar definition (spec §4.3) the fast paths are tested against.</summary>
    public static class Reference
    {
        /// <summary>The rounded value on the type's grid: an integer for int, an e4m3 / e2m1 value for float.</summary>
        public static float Grid(float x, float effectiveScale, float zeroPoint, QuantizationArgs args)
        {
            if (args.Type == QuantizationType.Int) return MathF.Round(Math.Clamp(x / effectiveScale + zeroPoint, args.QMin, args.QMax), MidpointRounding.ToEven);
            float t = Math.Clamp(x / effectiveScale, args.QMin, args.QMax);   // float types have no zero point (keeps −0's sign)
            return args.NumBits == 8 ? Float8E4M3.ToFloat(Float8E4M3.FromFloat(t)) : Float4E2M1.ToFloat(Float4E2M1.FromFloat(t));
        }

        public static byte Code(float x, float effectiveScale, float zeroPoint, QuantizationArgs args)
        {
            if (args.Type == QuantizationType.Int) return (byte)(sbyte)Grid(x, effectiveScale, zeroPoint, args);
            float t = Math.Clamp(x / effectiveScale, args.QMin, args.QMax);
            return args.NumBits == 8 ? Float8E4M3.FromFloat(t) : Float4E2M1.FromFloat(t);
        }
    }
}
