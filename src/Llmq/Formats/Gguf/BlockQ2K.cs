using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>Q2_K: super-blocks of 256 weights in 16 sub-blocks of 16 (84 bytes, 2.625 bpw):
/// scales[16] (low nibble: 4-bit scale, high nibble: 4-bit min), qs[64] (2-bit levels, four per byte), f16 d, f16 dmin.
/// w = d·sc·q − dmin·m. Byte qs[32·k + l] holds levels l, l+32, l+64, l+96 of the k-th 128-weight half at bits 0,2,4,6.</summary>
internal static class BlockQ2K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 84;
    const int OffQs = 16, OffD = 80, OffDmin = 82;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    [SkipLocalsInit]   // ~48 KB of buffers per row, each written before it is read: zeroing them evicts the row from L1
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            QuantizeRowReference(x, y, importance);
            return;
        }
        // Chunks of up to 32 super-blocks. Two super-blocks per pass: their 32 sub-blocks run the scale search side by
        // side, one per lane. With importance the chunk's 32 super-block scale (and min) searches then run side by side too.
        const int Sub = 16, Blocks = LanePair.Lanes / Sub, Chunk = LanePair.Lanes;
        Span<LanePair> xt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> wt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> lt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub * Chunk / Blocks)], Sub * Chunk / Blocks);   // every pass's levels, lane-interleaved
        ReadOnlySpan<float> levels = MemoryMarshal.Cast<LanePair, float>(lt);
        Span<LanePair> laux = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<float> scales = stackalloc float[Sub * Chunk];   // super-block k's sub-block scales at 16k
        Span<float> mins = stackalloc float[Sub * Chunk];
        Span<float> sw = stackalloc float[Sub * Chunk];
        Span<float> sigma2 = stackalloc float[LanePair.Lanes];
        Span<float> sumX2 = stackalloc float[Chunk];
        Span<LanePair> blockScales = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);   // the chunk's scales, super-block k in lane k
        Span<LanePair> blockMins = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> blockWeights = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> scaleLevels = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> minLevels = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<float> dm = stackalloc float[Chunk];
        Span<float> mm = stackalloc float[Chunk];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        int nb = x.Length / QK;
        for (int c = 0; c < nb; c += Chunk)
        {
            int chunkCount = Math.Min(Chunk, nb - c);
            if (!importance.IsEmpty) QuantMath.SumsOfSquares(x.Slice(c * QK, chunkCount * QK), QK, sumX2[..chunkCount]);
            for (int p = 0; p * Blocks < chunkCount; p++)
            {
                int i = c + p * Blocks, count = Math.Min(Blocks, nb - i);
                var passLevels = lt.Slice(p * Sub, Sub);
                QuantMathLanes.Transpose(x.Slice(i * QK, count * QK), Sub, xt);
                LanePair scale, min;
                if (importance.IsEmpty)
                {
                    for (int l = 0; l < Sub; ++l) wt[l] = LanePair.Abs(xt[l]);
                    scale = QuantMathLanes.MakeQkxQuants(3, xt, wt, passLevels, laux, out min, -0.5f, 0.1f, 15, useMad: true, guardedLevels: false);
                }
                else
                {
                    // sigma² of each super-block, summed in ggml's order; lanes 16b…16b+15 belong to super-block b
                    for (int b = 0; b < count; b++)
                        sigma2.Slice(b * Sub, Sub).Fill(sumX2[p * Blocks + b] / QK);
                    var sig = LanePair.Create(sigma2);
                    QuantMathLanes.ImportanceWeights(importance.Slice(i * QK, count * QK), Sub, xt, sig, wt).CopyTo(sw[(p * LanePair.Lanes)..]);
                    scale = QuantMathLanes.MakeQkxQuants(3, xt, wt, passLevels, laux, out min, -0.9f, 0.05f, 36, useMad: false, guardedLevels: true);
                }
                scale.CopyTo(scales[(p * LanePair.Lanes)..]);
                min.CopyTo(mins[(p * LanePair.Lanes)..]);
            }
            if (!importance.IsEmpty)
            {
                QuantMathLanes.Transpose(scales[..(chunkCount * Sub)], Sub, blockScales);
                QuantMathLanes.Transpose(mins[..(chunkCount * Sub)], Sub, blockMins);
                QuantMathLanes.Transpose(sw[..(chunkCount * Sub)], Sub, blockWeights);
                QuantMathLanes.MakeQpQuants(15, blockScales, blockWeights, scaleLevels).CopyTo(dm);
                QuantMathLanes.MakeQpQuants(15, blockMins, blockWeights, minLevels).CopyTo(mm);
            }
            for (int k = 0; k < chunkCount; k++)
            {
                var yb = y.Slice((c + k) * BlockBytes, BlockBytes);
                var xb = x.Slice((c + k) * QK, QK);
                if (importance.IsEmpty) EncodeScales(yb, scales.Slice(Sub * k, Sub), mins.Slice(Sub * k, Sub));
                else
                {
                    for (int j = 0; j < Sub; ++j) yb[j] = (byte)((int)scaleLevels[j][k] | ((int)minLevels[j][k] << 4));
                    WriteScales(yb, dm[k], mm[k]);
                }
                int kept = Requantize(xb, yb, L);
                // super-block k's sub-block j searched in pass k / 2, lane 16 (k % 2) + j
                var passLevels = levels[(k / Blocks * Sub * LanePair.Lanes)..];
                for (int j = 0; j < QK / Sub; ++j)
                    if ((kept & (1 << j)) != 0)
                        for (int l = 0; l < Sub; ++l)
                            L[Sub * j + l] = (int)passLevels[l * LanePair.Lanes + Sub * (k % Blocks) + j];
                Pack(yb.Slice(OffQs, QK / 4), L);
            }
        }
    }

    /// <summary>The scalar form, one sub-block search after another: the reference the lane-parallel form is tested
    /// against, and the path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> levels = stackalloc byte[QK];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        Span<byte> Laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[QK / 16];
        Span<float> scales = stackalloc float[QK / 16];
        Span<float> sw = stackalloc float[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            if (importance.IsEmpty)
            {
                for (int j = 0; j < QK / 16; ++j)
                {
                    for (int l = 0; l < 16; ++l) weights[l] = MathF.Abs(xb[16 * j + l]);
                    scales[j] = QuantMath.MakeQkx2Quants(16, 3, xb.Slice(16 * j, 16), weights, levels.Slice(16 * j, 16), out mins[j], Laux, -0.5f, 0.1f, 15, true);
                }
            }
            else
            {
                var qwBlock = importance.Slice(i * QK, QK);
                float sigma2 = SumOfSquares(xb) / QK;
                for (int j = 0; j < QK / 16; ++j)
                {
                    var qw = qwBlock.Slice(16 * j, 16);
                    for (int l = 0; l < 16; ++l) weights[l] = qw[l] * MathF.Sqrt(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                    float sumw = 0;
                    for (int l = 0; l < 16; ++l) sumw += weights[l];
                    sw[j] = sumw;
                    scales[j] = QuantMath.MakeQkx3Quants(16, 3, xb.Slice(16 * j, 16), weights, levels.Slice(16 * j, 16), out mins[j], Laux, -0.9f, 0.05f, 36, false);
                }
            }
            for (int l = 0; l < QK; ++l) L[l] = levels[l];
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            EncodeScales(yb, scales, mins, importance.IsEmpty ? default : sw);
            Requantize(xb, yb, L);
            PackReference(yb.Slice(OffQs, QK / 4), L);
        }
    }

    /// <summary>The sum of squares, left to right, of a super-block (its σ² numerator).</summary>
    internal static float SumOfSquares(ReadOnlySpan<float> x)
    {
        float sum = 0;
        for (int j = 0; j < x.Length; ++j) sum += x[j] * x[j];
        return sum;
    }

    /// <summary>The 4-bit sub-block scales and mins and their f16 d and dmin: rounded against the largest, or (with
    /// importance sums <paramref name="sw"/>) by make_qp_quants.</summary>
    static void EncodeScales(Span<byte> y, ReadOnlySpan<float> scales, ReadOnlySpan<float> mins, ReadOnlySpan<float> sw = default)
    {
        if (!sw.IsEmpty)
        {
            Span<byte> Ls = stackalloc byte[QK / 16];
            Span<byte> Lm = stackalloc byte[QK / 16];
            float dm = QuantMath.MakeQpQuants(QK / 16, 15, scales, Ls, sw);
            float mm = QuantMath.MakeQpQuants(QK / 16, 15, mins, Lm, sw);
            for (int j = 0; j < QK / 16; ++j) y[j] = (byte)(Ls[j] | (Lm[j] << 4));
            WriteScales(y, dm, mm);
            return;
        }
        const float q4scale = 15f;
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < QK / 16; ++j)
        {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        if (maxScale > 0)
        {
            float iscale = q4scale / maxScale;
            for (int j = 0; j < QK / 16; ++j) y[j] = (byte)QuantMath.NearestInt(iscale * scales[j]);
        }
        else y[..16].Clear();
        if (maxMin > 0)
        {
            float iscale = q4scale / maxMin;
            for (int j = 0; j < QK / 16; ++j) y[j] |= (byte)(QuantMath.NearestInt(iscale * mins[j]) << 4);
        }
        WriteScales(y, maxScale > 0 ? maxScale / q4scale : 0f, maxMin > 0 ? maxMin / q4scale : 0f);
    }

    static void WriteScales(Span<byte> y, float d, float dmin)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(y[OffD..], QuantMath.ToHalf(d));
        BinaryPrimitives.WriteUInt16LittleEndian(y[OffDmin..], QuantMath.ToHalf(dmin));
    }

    /// <summary>The levels requantized with the stored (rounded) scales and mins into <paramref name="L"/>. A sub-block
    /// whose scale rounds to 0 keeps its search levels: returns those sub-blocks as bits, for the caller to fill in
    /// before packing.</summary>
    static int Requantize(ReadOnlySpan<float> x, ReadOnlySpan<byte> y, Span<int> L)
    {
        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(y[OffD..]));
        float mAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(y[OffDmin..]));
        Span<float> d = stackalloc float[QK / 16];
        Span<float> dm = stackalloc float[QK / 16];
        for (int j = 0; j < QK / 16; ++j)
        {
            d[j] = dAll * (y[j] & 0xF);
            dm[j] = mAll * (y[j] >> 4);
        }
        return QuantMath.Requantize(x, 16, dm, d, 0, 3, 0, L);
    }

    /// <summary>256 two-bit levels (0…3) into the 64 bytes <paramref name="qs"/>: byte 32k + l holds levels l, l+32, l+64,
    /// l+96 of the k-th 128 at bits 0, 2, 4, 6 (Q2_K's qs, and Q3_K's low bits).</summary>
    internal static void Pack(Span<byte> qs, ReadOnlySpan<int> L)
    {
        if (!Avx512F.IsSupported)
        {
            PackReference(qs, L);
            return;
        }
        ref int levels = ref MemoryMarshal.GetReference(L[..QK]);
        for (int j = 0; j < QK; j += 128)
            for (int l = 0; l < 32; l += 16)
            {
                var q0 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l));
                var q1 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 32));
                var q2 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 64));
                var q3 = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 96));
                Avx512F.ConvertToVector128Byte(q0 | (q1 << 2) | (q2 << 4) | (q3 << 6)).CopyTo(qs[(j / 4 + l)..]);
            }
    }

    /// <summary>The scalar <see cref="Pack"/>: the reference the vector form is tested against.</summary>
    internal static void PackReference(Span<byte> qs, ReadOnlySpan<int> L)
    {
        for (int j = 0; j < QK; j += 128)
            for (int l = 0; l < 32; ++l)
                qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var xb = x.Slice(i * QK, QK);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            float min = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffDmin..]));
            int o = 0, isc = 0;
            for (int n = 0; n < QK; n += 128)
            {
                var q = yb.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        byte sc = yb[isc++];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; ++l)
                            xb[o++] = dl * ((q[16 * half + l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}
