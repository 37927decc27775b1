using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>Q6_K: super-blocks of 256 weights in 16 sub-blocks of 16 (210 bytes, 6.5625 bpw): ql[128] (low 4 bits),
/// qh[64] (high 2 bits), int8 scales[16], f16 d. w = d·sc·(q − 32). Per 128-weight half k: ql[64k + l] holds weights
/// l (low nibble) and l+64 (high), ql[64k + 32 + l] weights l+32 and l+96; qh[32k + l] holds the high bits of l, l+32,
/// l+64, l+96 at bits 0, 2, 4, 6. Sub-block scales come from make_qx_quants (weights x², or the importance weights).</summary>
internal static class BlockQ6K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 210;
    const int OffQh = 128, OffScales = 192, OffD = 208;

    [SkipLocalsInit]   // ~7 KB of buffers per row, each written before it is read
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            QuantizeRowReference(x, y, importance);
            return;
        }
        // Two super-blocks per pass: their 32 sub-blocks run make_qx_quants side by side, one per lane.
        const int Sub = 16, Blocks = LanePair.Lanes / Sub;
        Span<LanePair> xt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> wt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<sbyte> levels = stackalloc sbyte[Sub];
        Span<float> d = stackalloc float[Sub];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i += Blocks)
        {
            int count = Math.Min(Blocks, nb - i);
            QuantMathLanes.Transpose(x.Slice(i * QK, count * QK), Sub, xt);
            if (importance.IsEmpty)
                for (int l = 0; l < Sub; ++l) wt[l] = xt[l] * xt[l];
            else
                QuantMathLanes.Transpose(importance.Slice(i * QK, count * QK), Sub, wt);
            var scale = QuantMathLanes.MakeQxQuants(32, xt, wt, default);
            for (int b = 0; b < count; b++)
            {
                var yb = y.Slice((i + b) * BlockBytes, BlockBytes);
                int kept = EncodeScales(b == 0 ? scale.A : scale.B, yb, d)
                    ? QuantMath.Requantize(x.Slice((i + b) * QK, QK), 16, default, d, -32, 31, 32, L)   // as Encode's
                    : -1;
                if (kept < 0) continue;
                // a sub-block whose scale rounded to 0 keeps its search levels: the scalar search gives the same ones
                for (int ib = 0; ib < QK / Sub; ++ib)
                    if ((kept & (1 << ib)) != 0)
                    {
                        var qw = importance.IsEmpty ? default : importance.Slice((i + b) * QK + Sub * ib, Sub);
                        QuantMath.MakeQxQuants(Sub, 32, x.Slice((i + b) * QK + Sub * ib, Sub), levels, 1, qw);
                        for (int l = 0; l < Sub; ++l) L[Sub * ib + l] = levels[l];
                    }
                Pack(yb, L);
            }
        }
    }

    /// <summary>The scalar form, one sub-block search after another: the reference the lane-parallel form is tested
    /// against, and the path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> levels = stackalloc sbyte[QK];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        Span<float> scales = stackalloc float[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            for (int ib = 0; ib < QK / 16; ++ib)
            {
                var qw = importance.IsEmpty ? default : importance.Slice(i * QK + 16 * ib, 16);
                scales[ib] = QuantMath.MakeQxQuants(16, 32, xb.Slice(16 * ib, 16), levels.Slice(16 * ib, 16), 1, qw);
            }
            for (int l = 0; l < QK; ++l) L[l] = levels[l];
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            if (Encode(xb, yb, scales, L) >= 0) Pack(yb, L);
        }
    }

    /// <summary>What follows the sub-block searches: int8 sub-block scales under f16 d and the levels requantized with
    /// them into <paramref name="L"/>. A sub-block whose scale rounds to 0 keeps its search levels: returns those
    /// sub-blocks as bits, for the caller to fill in before <see cref="Pack"/>; −1 when the whole block is zero (written).</summary>
    static int Encode(ReadOnlySpan<float> xb, Span<byte> yb, ReadOnlySpan<float> scales, Span<int> L)
    {
        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < QK / 16; ++ib)
        {
            float absScale = MathF.Abs(scales[ib]);
            if (absScale > maxAbsScale) { maxAbsScale = absScale; maxScale = scales[ib]; }
        }
        if (maxAbsScale < QuantMath.GroupMaxEps)
        {
            yb.Clear();
            return -1;
        }
        float iscale = -128f / maxScale;
        BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(1 / iscale));
        for (int ib = 0; ib < QK / 16; ++ib)
            yb[OffScales + ib] = (byte)(sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[ib]));

        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
        Span<float> d = stackalloc float[QK / 16];
        for (int j = 0; j < QK / 16; ++j) d[j] = dAll * (sbyte)yb[OffScales + j];
        // ggml rounds x/d; (x + 0)/d rounds to the same integer for every x (only the sign of a zero can differ)
        return QuantMath.Requantize(xb, 16, default, d, -32, 31, 32, L);
    }

    /// <summary><see cref="Encode"/>'s scales for one super-block's 16 sub-block scales on one vector: the first of the
    /// largest magnitude (ggml's strict "&gt;" from 0: NaN never, a later equal magnitude never) sets d = −maxScale/128,
    /// then the int8 scales and the sub-block scales d·sc into <paramref name="d"/>. False when the block is all zero
    /// (written so).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static bool EncodeScales(Vector512<float> scales, Span<byte> yb, Span<float> d)
    {
        var magnitude = Vector512.MaxNative(Vector512.Abs(scales), Vector512<float>.Zero);   // NaN counts as 0, as "NaN > max" is false
        var largest = magnitude;
        var lane = Vector512<int>.Indices;
        for (int shift = 1; shift < 16; shift <<= 1) largest = Vector512.Max(largest, Vector512.Shuffle(largest, lane ^ Vector512.Create(shift)));
        float maxAbsScale = largest.ToScalar();
        if (maxAbsScale < QuantMath.GroupMaxEps)
        {
            yb.Clear();
            return false;
        }
        int first = BitOperations.TrailingZeroCount(Vector512.Equals(magnitude, largest).ExtractMostSignificantBits());
        float iscale = -128f / scales.GetElement(first);
        BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(1 / iscale));
        var levels = Vector512.Min(QuantMathLanes.NearestInt(Vector512.Create(iscale) * scales), Vector512.Create(127));
        var bytes = Avx512F.ConvertToVector128SByte(levels);   // the low byte, as the C cast to int8
        bytes.AsByte().CopyTo(yb[OffScales..]);
        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
        (Vector512.Create(dAll) * Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(bytes))).CopyTo(d);
        return true;
    }

    /// <summary>The levels (0…63) into ql (low nibbles) and qh (high two bits).</summary>
    internal static void Pack(Span<byte> yb, ReadOnlySpan<int> L)
    {
        if (!Avx512F.IsSupported)
        {
            PackReference(yb, L);
            return;
        }
        ref int levels = ref MemoryMarshal.GetReference(L[..QK]);
        var nibble = Vector512.Create(0xF);
        for (int j = 0; j < QK; j += 128)
        {
            var ql = yb.Slice(j / 2, 64);
            var qh = yb.Slice(OffQh + j / 4, 32);
            for (int l = 0; l < 32; l += 16)
            {
                var q1 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l));
                var q2 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 32));
                var q3 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 64));
                var q4 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 96));
                Avx512F.ConvertToVector128Byte((q1 & nibble) | ((q3 & nibble) << 4)).CopyTo(ql[l..]);
                Avx512F.ConvertToVector128Byte((q2 & nibble) | ((q4 & nibble) << 4)).CopyTo(ql[(l + 32)..]);
                var high = (q1 >>> 4) | ((q2 >>> 4) << 2) | ((q3 >>> 4) << 4) | ((q4 >>> 4) << 6);
                Avx512F.ConvertToVector128Byte(high).CopyTo(qh[l..]);
            }
        }
    }

    /// <summary>The scalar <see cref="Pack"/>: the reference the vector form is tested against.</summary>
    internal static void PackReference(Span<byte> yb, ReadOnlySpan<int> L)
    {
        for (int j = 0; j < QK; j += 128)
        {
            var ql = yb.Slice(j / 2, 64);
            var qh = yb.Slice(OffQh + j / 4, 32);
            for (int l = 0; l < 32; ++l)
            {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (byte)(q1 | (q3 << 4));
                ql[l + 32] = (byte)(q2 | (q4 << 4));
                qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var xb = x.Slice(i * QK, QK);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            for (int n = 0; n < QK; n += 128)
            {
                var ql = yb.Slice(n / 2, 64);
                var qh = yb.Slice(OffQh + n / 4, 32);
                var sc = yb.Slice(OffScales + n / 16, 8);
                for (int l = 0; l < 32; ++l)
                {
                    int isc = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    xb[n + l] = d * (sbyte)sc[isc] * q1;
                    xb[n + l + 32] = d * (sbyte)sc[isc + 2] * q2;
                    xb[n + l + 64] = d * (sbyte)sc[isc + 4] * q3;
                    xb[n + l + 96] = d * (sbyte)sc[isc + 6] * q4;
                }
            }
        }
    }
}
