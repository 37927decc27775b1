using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>Q3_K: super-blocks of 256 weights in 16 sub-blocks of 16 (110 bytes, 3.4375 bpw):
/// hmask[32] (bit 2 of each level: weight j's at byte j%32, bit j/32), qs[64] (low 2 bits, laid out as Q2_K),
/// scales[12] (sixteen 6-bit signed scales, biased by 32: low nibbles in bytes 0–7, high 2 bits in bytes 8–11), f16 d.
/// w = d·(sc − 32)·(q − 4).</summary>
internal static class BlockQ3K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 110;
    const int OffQs = 32, OffScales = 96, OffD = 108;

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
        // side, one per lane. With importance the chunk's 32 super-block scale searches then run side by side too.
        const int Sub = 16, Blocks = LanePair.Lanes / Sub, Chunk = LanePair.Lanes;
        Span<LanePair> xt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(2 * Sub)], 2 * Sub);
        Span<LanePair> wt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> lt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub * Chunk / Blocks)], Sub * Chunk / Blocks);   // every pass's levels, lane-interleaved
        ReadOnlySpan<float> levels = MemoryMarshal.Cast<LanePair, float>(lt);
        Span<LanePair> pairScales = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(2)], 2);
        Span<float> scales = stackalloc float[Sub * Chunk];   // super-block k's sub-block scales at 16k
        Span<float> sw = stackalloc float[Sub * Chunk];
        Span<float> sigma2 = stackalloc float[LanePair.Lanes];
        Span<float> sumX2 = stackalloc float[Chunk];
        Span<LanePair> blockScales = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);   // the chunk's scales, super-block k in lane k
        Span<LanePair> blockWeights = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> blockLevels = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<float> d = stackalloc float[Chunk];
        Span<sbyte> Ls = stackalloc sbyte[Sub];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        int nb = x.Length / QK;
        for (int c = 0; c < nb; c += Chunk)
        {
            int chunkCount = Math.Min(Chunk, nb - c);
            if (!importance.IsEmpty) QuantMath.SumsOfSquares(x.Slice(c * QK, chunkCount * QK), QK, sumX2[..chunkCount]);
            // without importance two passes at a time: their searches interleave (make_q3_quants waits on latency)
            for (int p = 0; p * Blocks < chunkCount; p += importance.IsEmpty ? 2 : 1)
            {
                int i = c + p * Blocks, count = Math.Min(Blocks, nb - i);
                var passLevels = lt.Slice(p * Sub, Sub);
                QuantMathLanes.Transpose(x.Slice(i * QK, count * QK), Sub, xt);
                LanePair scale;
                if (importance.IsEmpty)
                {
                    int next = c + chunkCount - (i + Blocks);   // super-blocks of the chunk after this pass
                    int sets = next > 0 ? 2 : 1;
                    if (sets == 2) QuantMathLanes.Transpose(x.Slice((i + Blocks) * QK, Math.Min(Blocks, next) * QK), Sub, xt[Sub..]);
                    QuantMathLanes.MakeQ3Quants(4, xt[..(sets * Sub)], lt.Slice(p * Sub, sets * Sub), pairScales[..sets]);
                    if (sets == 2) pairScales[1].CopyTo(scales[((p + 1) * LanePair.Lanes)..]);
                    scale = pairScales[0];
                }
                else
                {
                    // sigma² of each super-block, summed in ggml's order; lanes 16b…16b+15 belong to super-block b
                    for (int b = 0; b < count; b++)
                        sigma2.Slice(b * Sub, Sub).Fill(2 * sumX2[p * Blocks + b] / QK);
                    var sig = LanePair.Create(sigma2);
                    QuantMathLanes.ImportanceWeights(importance.Slice(i * QK, count * QK), Sub, xt, sig, wt).CopyTo(sw[(p * LanePair.Lanes)..]);
                    scale = QuantMathLanes.MakeQxQuants(4, xt[..Sub], wt, passLevels);
                }
                scale.CopyTo(scales[(p * LanePair.Lanes)..]);
            }
            if (!importance.IsEmpty)
            {
                QuantMathLanes.Transpose(scales[..(chunkCount * Sub)], Sub, blockScales);
                QuantMathLanes.Transpose(sw[..(chunkCount * Sub)], Sub, blockWeights);
                QuantMathLanes.MakeQxQuants(32, blockScales, blockWeights, blockLevels).CopyTo(d);
            }
            for (int k = 0; k < chunkCount; k++)
            {
                var yb = y.Slice((c + k) * BlockBytes, BlockBytes);
                var xb = x.Slice((c + k) * QK, QK);
                if (importance.IsEmpty) EncodeScales(yb, scales.Slice(Sub * k, Sub));
                else
                {
                    for (int j = 0; j < Sub; ++j) Ls[j] = (sbyte)blockLevels[j][k];
                    WriteScales(yb, d[k], Ls);
                }
                int kept = Requantize(xb, yb, L);
                // super-block k's sub-block j searched in pass k / 2, lane 16 (k % 2) + j
                var passLevels = levels[(k / Blocks * Sub * LanePair.Lanes)..];
                for (int j = 0; j < QK / Sub; ++j)
                    if ((kept & (1 << j)) != 0)
                        for (int l = 0; l < Sub; ++l)
                            L[Sub * j + l] = (int)passLevels[l * LanePair.Lanes + Sub * (k % Blocks) + j];
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
        Span<float> weight = stackalloc float[16];
        Span<float> sw = stackalloc float[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            if (importance.IsEmpty)
            {
                for (int j = 0; j < QK / 16; ++j)
                    scales[j] = QuantMath.MakeQ3Quants(16, 4, xb.Slice(16 * j, 16), levels.Slice(16 * j, 16), true);
            }
            else
            {
                var qwBlock = importance.Slice(i * QK, QK);
                float sigma2 = 2 * BlockQ2K.SumOfSquares(xb) / QK;
                for (int j = 0; j < QK / 16; ++j)
                {
                    var qw = qwBlock.Slice(16 * j, 16);
                    for (int l = 0; l < 16; ++l) weight[l] = qw[l] * MathF.Sqrt(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                    float sumw = 0;
                    for (int l = 0; l < 16; ++l) sumw += weight[l];
                    sw[j] = sumw;
                    scales[j] = QuantMath.MakeQxQuants(16, 4, xb.Slice(16 * j, 16), levels.Slice(16 * j, 16), 1, weight);
                }
            }
            for (int l = 0; l < QK; ++l) L[l] = levels[l];
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            EncodeScales(yb, scales, importance.IsEmpty ? default : sw);
            Requantize(xb, yb, L);
            PackReference(yb, L);
        }
    }

    /// <summary>The sub-block scales and f16 d of a super-block: rounded against the largest, or (with importance sums
    /// <paramref name="sw"/>) by make_qx_quants.</summary>
    static void EncodeScales(Span<byte> yb, ReadOnlySpan<float> scales, ReadOnlySpan<float> sw = default)
    {
        if (!sw.IsEmpty)
        {
            Span<sbyte> Ls = stackalloc sbyte[QK / 16];
            WriteScales(yb, QuantMath.MakeQxQuants(QK / 16, 32, scales, Ls, 1, sw), Ls);
            return;
        }
        var sc = yb.Slice(OffScales, 12);
        sc.Clear();
        float maxScale = 0, amax = 0;
        for (int j = 0; j < QK / 16; ++j)
        {
            float scale = MathF.Abs(scales[j]);
            if (scale > amax) { amax = scale; maxScale = scales[j]; }
        }
        if (maxScale != 0)
        {
            float iscale = -32f / maxScale;
            for (int j = 0; j < QK / 16; ++j)
            {
                sbyte l = (sbyte)QuantMath.NearestInt(iscale * scales[j]);
                PackScale(sc, j, Math.Clamp((int)l, -32, 31) + 32);
            }
            BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(1 / iscale));
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(0f));
        }
    }

    /// <summary>Stores make_qx_quants' result for the sub-block scales: the biased levels <paramref name="Ls"/> and d.</summary>
    static void WriteScales(Span<byte> yb, float d, ReadOnlySpan<sbyte> Ls)
    {
        var sc = yb.Slice(OffScales, 12);
        sc.Clear();
        for (int j = 0; j < QK / 16; ++j) PackScale(sc, j, Ls[j]);
        BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(d));
    }

    /// <summary>The levels requantized with the stored (rounded) scales into <paramref name="L"/>. A sub-block whose
    /// scale rounds to 0 keeps its search levels: returns those sub-blocks as bits, for the caller to fill in before packing.</summary>
    static int Requantize(ReadOnlySpan<float> xb, ReadOnlySpan<byte> yb, Span<int> L)
    {
        var sc = yb.Slice(OffScales, 12);
        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
        Span<float> d = stackalloc float[QK / 16];
        for (int j = 0; j < QK / 16; ++j) d[j] = dAll * UnpackScale(sc, j);
        // ggml rounds x/d; (x + 0)/d rounds to the same integer for every x (only the sign of a zero can differ)
        return QuantMath.Requantize(xb, 16, default, d, -4, 3, 4, L);
    }

    /// <summary>The levels (0…7) into hmask (bit 2 of level j at byte j % 32, bit j / 32) and qs (the low two bits, as
    /// Q2_K packs them); <paramref name="L"/> is left holding the low bits.</summary>
    internal static void Pack(Span<byte> yb, Span<int> L)
    {
        if (!Avx512F.IsSupported)
        {
            PackReference(yb, L);
            return;
        }
        ref int levels = ref MemoryMarshal.GetReference(L[..QK]);
        var three = Vector512.Create(3);
        Vector512<int> low = default, high = default;   // hmask bytes 0–15 and 16–31
        for (int k = 0; k < QK / 32; ++k)
        {
            var bit = Vector512.Create(1 << k);
            var a = Vector512.LoadUnsafe(ref levels, (nuint)(32 * k));
            var b = Vector512.LoadUnsafe(ref levels, (nuint)(32 * k + 16));
            low |= Vector512.GreaterThan(a, three) & bit;
            high |= Vector512.GreaterThan(b, three) & bit;
            (a & three).StoreUnsafe(ref levels, (nuint)(32 * k));
            (b & three).StoreUnsafe(ref levels, (nuint)(32 * k + 16));
        }
        Avx512F.ConvertToVector128Byte(low).CopyTo(yb);
        Avx512F.ConvertToVector128Byte(high).CopyTo(yb[16..]);
        BlockQ2K.Pack(yb.Slice(OffQs, QK / 4), L);
    }

    /// <summary>The scalar <see cref="Pack"/>: the reference the vector form is tested against.</summary>
    internal static void PackReference(Span<byte> yb, Span<int> L)
    {
        var hmask = yb[..32];
        hmask.Clear();
        int m = 0;
        byte hm = 1;
        for (int j = 0; j < QK; ++j)
        {
            if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }
            if (++m == QK / 8) { m = 0; hm <<= 1; }
        }
        BlockQ2K.PackReference(yb.Slice(OffQs, QK / 4), L);
    }

    /// <summary>Stores the biased 6-bit scale l (0..63) of sub-block j.</summary>
    static void PackScale(Span<byte> sc, int j, int l)
    {
        if (j < 8) sc[j] = (byte)(l & 0xF);
        else sc[j - 8] |= (byte)((l & 0xF) << 4);
        l >>= 4;
        sc[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
    }

    /// <summary>Sub-block j's signed scale (the stored 6-bit value minus 32).</summary>
    static int UnpackScale(ReadOnlySpan<byte> sc, int j)
    {
        int low = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        return (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var xb = x.Slice(i * QK, QK);
            float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            var sc = yb.Slice(OffScales, 12);
            var hm = yb[..32];
            int o = 0, isc = 0;
            byte m = 1;
            for (int n = 0; n < QK; n += 128)
            {
                var q = yb.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        float dl = dAll * UnpackScale(sc, isc++);
                        for (int l = 0; l < 16; ++l)
                        {
                            int k = 16 * half + l;
                            xb[o++] = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) != 0 ? 0 : 4));
                        }
                    }
                    m <<= 1;
                }
            }
        }
    }
}
