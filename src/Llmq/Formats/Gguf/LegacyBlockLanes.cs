using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>The legacy 32-weight blocks (Q4_0, Q4_1: <see cref="BlockQ4"/>; Q5_0, Q5_1: <see cref="BlockQ5"/>) 32 blocks
/// at a time, byte-identical with their scalar forms. Block g's weights go to lane g (<see cref="QuantMathLanes.Transpose"/>),
/// so the per-block reductions — the signed value of largest magnitude, or the min and max — run as per-lane selects in
/// the scalar order (first of equal magnitudes, first of signed zeros, NaN skipped, exactly as the scalar comparisons do),
/// and with importance weights the scale searches are the lane forms of make_qx_quants and make_qkx3_quants. The
/// rounding and the bit packing then run per block on two 16-float vectors.</summary>
internal static class LegacyBlockLanes
{
    const int QK = 32;

    /// <summary>Bytes of a block: f16 d, f16 m when <paramref name="withMin"/>, the u32 high bits when 5-bit, 16 nibble bytes.</summary>
    public static int BlockBytes(int bits, bool withMin) => 18 + (withMin ? 2 : 0) + (bits == 5 ? 4 : 0);

    /// <summary>Quantizes whole rows of <paramref name="columns"/> weights into <paramref name="bits"/>-bit blocks (4 or 5),
    /// symmetric (Q4_0, Q5_0) or with a min (Q4_1, Q5_1), weighted by <paramref name="importance"/> (one weight per
    /// column) when it is not empty. Needs 512-bit vectors.</summary>
    public static void QuantizeRows(ReadOnlySpan<float> x, Span<byte> y, int columns, ReadOnlySpan<float> importance, int bits, bool withMin)
    {
        // σ² of a weighted row is its sum of squares over its length: one chain of adds, so eight rows' chains run interleaved
        const int Interleave = 8;
        Span<float> sums = stackalloc float[Interleave];
        int rows = x.Length / columns, rowBytes = columns / QK * BlockBytes(bits, withMin);
        for (int r0 = 0; r0 < rows; r0 += Interleave)
        {
            int n = Math.Min(Interleave, rows - r0);
            if (!importance.IsEmpty) QuantMath.SumsOfSquares(x.Slice(r0 * columns, n * columns), columns, sums[..n]);
            for (int r = r0; r < r0 + n; r++)
                QuantizeRow(x.Slice(r * columns, columns), y.Slice(r * rowBytes, rowBytes), importance, bits, withMin, sums[r - r0] / columns);
        }
    }

    /// <summary>One row; <paramref name="sigma2"/> is its mean square, used with importance weights only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    [SkipLocalsInit]   // 17 KB of buffers per row, each written before it is read: zeroing them costs ~10%
    static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int bits, bool withMin, float sigma2)
    {
        int blockBytes = BlockBytes(bits, withMin);
        Span<LanePair> xt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(QK)], QK);
        Span<LanePair> wt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(QK)], QK);
        Span<LanePair> lt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(QK)], QK);
        Span<LanePair> laux = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(QK)], QK);
        Span<float> scales = stackalloc float[LanePair.Lanes];
        Span<float> second = stackalloc float[LanePair.Lanes];   // per block: 1/d (symmetric) or the min
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i += LanePair.Lanes)
        {
            int count = Math.Min(LanePair.Lanes, nb - i);
            var xs = x.Slice(i * QK, count * QK);
            QuantMathLanes.Transpose(xs, QK, xt);
            if (importance.IsEmpty)
            {
                Reduce(xt, bits, withMin, scales, second);
                for (int b = 0; b < count; b++)
                    RoundBlock(xs.Slice(b * QK, QK), y.Slice((i + b) * blockBytes, blockBytes), scales[b], second[b], bits, withMin);
                continue;
            }
            QuantMathLanes.Transpose(importance.Slice(i * QK, count * QK), QK, wt);
            var sig = LanePair.Create(sigma2);
            for (int l = 0; l < QK; ++l) wt[l] *= LanePair.Sqrt(sig + xt[l] * xt[l]);
            LanePair scale, min = default;
            if (withMin)
                scale = QuantMathLanes.MakeQkxQuants((1 << bits) - 1, xt, wt, lt, laux, out min, -0.9f, 0.05f, 36, false, guardedLevels: true);
            else
                scale = QuantMathLanes.MakeQxQuants(1 << (bits - 1), xt, wt, lt);
            scale.CopyTo(scales);
            min.CopyTo(second);
            // the levels back into block order: pair b = block b's 32 levels
            QuantMathLanes.Transpose(MemoryMarshal.Cast<LanePair, float>(lt), QK, laux);
            for (int b = 0; b < count; b++)
                Pack(y.Slice((i + b) * blockBytes, blockBytes), bits, QuantMath.ToHalf(scales[b]), withMin ? QuantMath.ToHalf(-second[b]) : (ushort)0,
                    withMin, Vector512.ConvertToInt32(laux[b].A), Vector512.ConvertToInt32(laux[b].B));
        }
    }

    /// <summary>Per lane (block): d and, symmetric, 1/d (0 for d = 0) into <paramref name="second"/> from the signed value of
    /// largest magnitude; with a min, d = (max − min)/(2^bits − 1) and the min.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Reduce(ReadOnlySpan<LanePair> xt, int bits, bool withMin, Span<float> scales, Span<float> second)
    {
        var zero = LanePair.Zero;
        LanePair d;
        if (withMin)
        {
            var min = LanePair.Create(float.MaxValue);
            var max = LanePair.Create(-float.MaxValue);
            for (int l = 0; l < QK; ++l)
            {
                var v = xt[l];
                min = LanePair.Select(LanePair.Less(v, min), v, min);
                max = LanePair.Select(LanePair.Greater(v, max), v, max);
            }
            d = (max - min) / LanePair.Create((1 << bits) - 1);
            min.CopyTo(second);
        }
        else
        {
            LanePair amax = zero, max = zero;
            for (int l = 0; l < QK; ++l)
            {
                var v = xt[l];
                var larger = LanePair.Less(amax, LanePair.Abs(v));
                amax = LanePair.Select(larger, LanePair.Abs(v), amax);
                max = LanePair.Select(larger, v, max);
            }
            d = max / LanePair.Create(-(1 << (bits - 1)));
            LanePair.Select(LanePair.Equal(d, zero), zero, LanePair.Create(1f) / d).CopyTo(second);
        }
        d.CopyTo(scales);
    }

    /// <summary>One block's plain rounding under the reduced d: symmetric q = min(top, trunc(x/d + half + ½)), with a min
    /// q = trunc((x − m)/d + ½) (clamped to 15 for Q4_1 only, as in ggml); float-to-int conversions saturate in both forms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RoundBlock(ReadOnlySpan<float> xb, Span<byte> yb, float d, float second, int bits, bool withMin)
    {
        var lo = Vector512.Create(xb);
        var hi = Vector512.Create(xb[16..]);
        var top = Vector512.Create((1 << bits) - 1);
        Vector512<int> qlo, qhi;
        float id;
        if (withMin)
        {
            id = d != 0 ? 1.0f / d : 0.0f;
            var m = Vector512.Create(second);
            qlo = Vector512.ConvertToInt32((lo - m) * Vector512.Create(id) + Vector512.Create(0.5f));
            qhi = Vector512.ConvertToInt32((hi - m) * Vector512.Create(id) + Vector512.Create(0.5f));
            if (bits == 4)
            {
                qlo = Vector512.Min(qlo, top);
                qhi = Vector512.Min(qhi, top);
            }
        }
        else
        {
            var vid = Vector512.Create(second);
            var offset = Vector512.Create((1 << (bits - 1)) + 0.5f);
            qlo = Vector512.Min(Vector512.ConvertToInt32(lo * vid + offset), top);
            qhi = Vector512.Min(Vector512.ConvertToInt32(hi * vid + offset), top);
        }
        Pack(yb, bits, QuantMath.ToHalf(d), withMin ? QuantMath.ToHalf(second) : (ushort)0, withMin, qlo, qhi);
    }

    /// <summary>Writes d (and m), then levels 0–15 (<paramref name="qlo"/>) and 16–31 (<paramref name="qhi"/>): nibble byte j
    /// holds levels j and j + 16; 5-bit blocks put bit 4 of level j at bit j of the u32 before the nibbles. Only the low
    /// 8 bits of a 4-bit block's level | level′ « 4 are kept, as the scalar byte cast does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Pack(Span<byte> yb, int bits, ushort d, ushort m, bool withMin, Vector512<int> qlo, Vector512<int> qhi)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(yb, d);
        int o = 2;
        if (withMin)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], m);
            o = 4;
        }
        if (bits == 4)
        {
            Avx512F.ConvertToVector128Byte(qlo | (qhi << 4)).CopyTo(yb[o..]);
            return;
        }
        var nibble = Vector512.Create(0xF);
        var bit4 = Vector512.Create(0x10);
        Avx512F.ConvertToVector128Byte((qlo & nibble) | ((qhi & nibble) << 4)).CopyTo(yb[(o + 4)..]);
        uint qh = (uint)Vector512.Equals(qlo & bit4, bit4).ExtractMostSignificantBits()
            | ((uint)Vector512.Equals(qhi & bit4, bit4).ExtractMostSignificantBits() << 16);
        BinaryPrimitives.WriteUInt32LittleEndian(yb[o..], qh);
    }
}
