using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>Q4_K and Q5_K: super-blocks of 256 weights in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min
/// (packed into 12 bytes, see <see cref="QuantMath.GetScaleMinK4"/>) under f16 d and dmin: w = d·sc·q − dmin·m.
/// <list type="bullet">
/// <item>Q4_K = d, dmin, scales[12], qs[128] (144 bytes, 4.5 bpw). Sub-blocks 2k and 2k+1 share qs[32k..32k+32): low and high nibble.</item>
/// <item>Q5_K = d, dmin, scales[12], qh[32], qs[128] (176 bytes, 5.5 bpw). Bit 4 of weight 64k+l is qh[l] bit 2k, of weight 64k+32+l bit 2k+1.</item>
/// </list>
/// Without importance weights the sub-block fit is make_qkx2_quants weighted by rms + |x| and the scales are rounded
/// against the largest; with them it is make_qkx3_quants weighted by imatrix·sqrt(σ² + x²) and make_qp_quants picks the scales.</summary>
internal static class BlockQ4K
{
    public const int QK = GgmlTypes.QK_K;
    public const int Q4KBytes = 144;
    public const int Q5KBytes = 176;

    public static void QuantizeRowQ4K(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) =>
        QuantizeRow(x, y, importance, nmax: 15, Q4KBytes);

    public static void QuantizeRowQ5K(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) =>
        QuantizeRow(x, y, importance, nmax: 31, Q5KBytes);

    [SkipLocalsInit]   // ~14 KB of buffers per row, each written before it is read
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int nmax, int blockBytes)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            QuantizeRowReference(x, y, importance, nmax, blockBytes);
            return;
        }
        // Four super-blocks per pass: their 32 sub-blocks run the scale search side by side, one per lane. With
        // importance, chunks of up to 32 super-blocks: the chunk's super-block scale (and min) searches then run side
        // by side too. Without, a chunk is one pass.
        const int Sub = 32, Blocks = LanePair.Lanes / 8, Chunk = LanePair.Lanes;
        Span<LanePair> xt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> wt = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<LanePair> laux = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(Sub)], Sub);
        Span<byte> levels = stackalloc byte[Sub];
        Span<float> scales = stackalloc float[8 * Chunk];   // super-block k's sub-block scales at 8k
        Span<float> mins = stackalloc float[8 * Chunk];
        Span<float> sw = stackalloc float[8 * Chunk];
        Span<float> sigma2 = stackalloc float[LanePair.Lanes];
        sigma2.Clear();   // lanes past the row's last super-block read it too
        Span<float> blockSigma2 = stackalloc float[Chunk];
        Span<LanePair> blockScales = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(8)], 8);   // the chunk's scales, super-block k in lane k
        Span<LanePair> blockMins = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(8)], 8);
        Span<LanePair> blockWeights = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(8)], 8);
        Span<LanePair> scaleLevels = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(8)], 8);
        Span<LanePair> minLevels = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(8)], 8);
        Span<float> dm = stackalloc float[Chunk];
        Span<float> mm = stackalloc float[Chunk];
        Span<float> subScales = stackalloc float[LanePair.Lanes];   // without importance: the pass's d·sc and dmin·m
        Span<float> subMins = stackalloc float[LanePair.Lanes];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        int nb = x.Length / QK, chunk = importance.IsEmpty ? Blocks : Chunk;
        for (int c = 0; c < nb; c += chunk)
        {
            int chunkCount = Math.Min(chunk, nb - c);
            if (!importance.IsEmpty)
            {
                // sigma² of each super-block, summed in ggml's order
                QuantMath.SumsOfSquares(x.Slice(c * QK, chunkCount * QK), QK, blockSigma2[..chunkCount]);
                for (int k = 0; k < chunkCount; k++) blockSigma2[k] = 2 * blockSigma2[k] / QK;
            }
            for (int p = 0; p * Blocks < chunkCount; p++)
            {
                int i = c + p * Blocks, count = Math.Min(Blocks, nb - i);
                QuantMathLanes.Transpose(x.Slice(i * QK, count * QK), Sub, xt);
                LanePair scale, min;
                if (importance.IsEmpty)
                {
                    var sumX2 = LanePair.Zero;
                    for (int l = 0; l < Sub; ++l) sumX2 += xt[l] * xt[l];
                    var avX = LanePair.Sqrt(sumX2 / LanePair.Create(32f));
                    for (int l = 0; l < Sub; ++l) wt[l] = avX + LanePair.Abs(xt[l]);
                    scale = nmax == 15
                        ? QuantMathLanes.MakeQkxQuants(15, xt, wt, default, laux, out min, -1f, 0.1f, 20, false, guardedLevels: false)
                        : QuantMathLanes.MakeQkxQuants(31, xt, wt, default, laux, out min, -0.5f, 0.1f, 15, false, guardedLevels: false);
                }
                else
                {
                    // lanes 8b…8b+7 belong to super-block b
                    for (int b = 0; b < count; b++) sigma2.Slice(b * 8, 8).Fill(blockSigma2[p * Blocks + b]);
                    var sig = LanePair.Create(sigma2);
                    QuantMathLanes.ImportanceWeights(importance.Slice(i * QK, count * QK), Sub, xt, sig, wt).CopyTo(sw[(p * LanePair.Lanes)..]);
                    scale = QuantMathLanes.MakeQkxQuants(nmax, xt, wt, default, laux, out min, -0.9f, 0.05f, 36, false, guardedLevels: true);
                }
                scale.CopyTo(scales[(p * LanePair.Lanes)..]);
                min.CopyTo(mins[(p * LanePair.Lanes)..]);
            }
            if (!importance.IsEmpty)
            {
                QuantMathLanes.Transpose(scales[..(chunkCount * 8)], 8, blockScales);
                QuantMathLanes.Transpose(mins[..(chunkCount * 8)], 8, blockMins);
                QuantMathLanes.Transpose(sw[..(chunkCount * 8)], 8, blockWeights);
                QuantMathLanes.MakeQpQuants(63, blockScales, blockWeights, scaleLevels).CopyTo(dm);
                QuantMathLanes.MakeQpQuants(63, blockMins, blockWeights, minLevels).CopyTo(mm);
            }
            if (importance.IsEmpty) EncodeScales(LanePair.Create(scales), LanePair.Create(mins), y.Slice(c * blockBytes, chunkCount * blockBytes), blockBytes, subScales, subMins);
            for (int k = 0; k < chunkCount; k++)
            {
                var yb = y.Slice((c + k) * blockBytes, blockBytes);
                var xb = x.Slice((c + k) * QK, QK);
                int kept;
                if (importance.IsEmpty) kept = QuantMath.Requantize(xb, 32, subMins.Slice(8 * k, 8), subScales.Slice(8 * k, 8), 0, nmax, 0, L);
                else
                {
                    var sc = yb.Slice(4, 12);
                    sc.Clear();
                    for (int j = 0; j < 8; ++j) PutScaleMin(j, (byte)scaleLevels[j][k], (byte)minLevels[j][k], sc, nmax);
                    kept = Requantize(xb, yb, dm[k], mm[k], L, nmax);
                }
                // a sub-block whose scale rounded to 0 keeps its search levels: the scalar search gives the same ones
                var qwBlock = importance.IsEmpty ? default : importance.Slice((c + k) * QK, QK);
                for (int j = 0; j < 8; ++j)
                    if ((kept & (1 << j)) != 0)
                    {
                        SearchSubBlock(xb, j, qwBlock, importance.IsEmpty ? 0 : blockSigma2[k], nmax, levels, out _, out _);
                        for (int l = 0; l < Sub; ++l) L[Sub * j + l] = levels[l];
                    }
                Pack(yb, L, nmax);
            }
        }
    }

    /// <summary>The scalar form, one sub-block search after another: the reference the lane-parallel form is tested
    /// against, and the path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowReference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int nmax, int blockBytes)
    {
        Span<byte> levels = stackalloc byte[QK];
        Span<int> L = CacheLines.Align<int>(stackalloc byte[CacheLines.Bytes<int>(QK)], QK);
        Span<float> mins = stackalloc float[QK / 32];
        Span<float> scales = stackalloc float[QK / 32];
        Span<float> sw = stackalloc float[QK / 32];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var qwBlock = importance.IsEmpty ? default : importance.Slice(i * QK, QK);
            float sigma2 = 0;
            if (!importance.IsEmpty)
            {
                float sumX2 = 0;
                for (int l = 0; l < QK; ++l) sumX2 += xb[l] * xb[l];
                sigma2 = 2 * sumX2 / QK;
            }
            for (int j = 0; j < QK / 32; ++j)
                scales[j] = SearchSubBlock(xb, j, qwBlock, sigma2, nmax, levels.Slice(32 * j, 32), out mins[j], out sw[j]);
            for (int l = 0; l < QK; ++l) L[l] = levels[l];
            var yb = y.Slice(i * blockBytes, blockBytes);
            Encode(xb, yb, scales, mins, importance.IsEmpty ? default : sw, L, nmax);
            Pack(yb, L, nmax);
        }
    }

    /// <summary>The scalar search of sub-block j of super-block <paramref name="xb"/>: make_qkx2_quants weighted by
    /// rms + |x| without importance, else make_qkx3_quants weighted by importance·sqrt(σ² + x²) (σ² = 2·Σx²/256 of the
    /// super-block). Returns the scale; the levels, the negated min and the weights' sum come out.</summary>
    static float SearchSubBlock(ReadOnlySpan<float> xb, int j, ReadOnlySpan<float> qwBlock, float sigma2, int nmax,
        Span<byte> levels, out float min, out float sumw)
    {
        Span<byte> Laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        var xs = xb.Slice(32 * j, 32);
        sumw = 0;
        if (qwBlock.IsEmpty)
        {
            float sumX2 = 0;
            for (int l = 0; l < 32; ++l) sumX2 += xs[l] * xs[l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = avX + MathF.Abs(xs[l]);
            return nmax == 15
                ? QuantMath.MakeQkx2Quants(32, 15, xs, weights, levels, out min, Laux, -1f, 0.1f, 20, false)
                : QuantMath.MakeQkx2Quants(32, 31, xs, weights, levels, out min, Laux, -0.5f, 0.1f, 15, false);
        }
        var qw = qwBlock.Slice(32 * j, 32);
        for (int l = 0; l < 32; ++l) weights[l] = qw[l] * MathF.Sqrt(sigma2 + xs[l] * xs[l]);
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        return QuantMath.MakeQkx3Quants(32, nmax, xs, weights, levels, out min, Laux, -0.9f, 0.05f, 36, false);
    }

    /// <summary>What follows the sub-block searches: 6-bit sub-block scales and mins under f16 d and dmin (rounded against
    /// the largest, or by make_qp_quants when <paramref name="sw"/> holds importance sums), and the levels requantized
    /// with those rounded scales into <paramref name="L"/>. A sub-block whose scale rounds to 0 keeps its search levels:
    /// returns those sub-blocks as bits, for the caller to fill in before <see cref="Pack"/>.</summary>
    static int Encode(ReadOnlySpan<float> xb, Span<byte> yb, ReadOnlySpan<float> scales, ReadOnlySpan<float> mins,
        ReadOnlySpan<float> sw, Span<int> L, int nmax)
    {
        var sc = yb.Slice(4, 12);
        sc.Clear();
        if (!sw.IsEmpty)
        {
            Span<byte> Ls = stackalloc byte[QK / 32];
            Span<byte> Lm = stackalloc byte[QK / 32];
            float dBlock = QuantMath.MakeQpQuants(QK / 32, 63, scales, Ls, sw);
            float mBlock = QuantMath.MakeQpQuants(QK / 32, 63, mins, Lm, sw);
            for (int j = 0; j < QK / 32; ++j) PutScaleMin(j, Ls[j], Lm[j], sc, nmax);
            return Requantize(xb, yb, dBlock, mBlock, L, nmax);
        }
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < QK / 32; ++j)
        {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        for (int j = 0; j < QK / 32; ++j)
        {
            byte ls = (byte)QuantMath.NearestInt(invScale * scales[j]);
            byte lm = (byte)QuantMath.NearestInt(invMin * mins[j]);
            QuantMath.PutScaleMinK4(j, Math.Min((byte)63, ls), Math.Min((byte)63, lm), sc);
        }
        return Requantize(xb, yb, maxScale / 63f, maxMin / 63f, L, nmax);
    }

    /// <summary><see cref="Encode"/> without importance for the (up to) four super-blocks of one pass at once, lane 8k + j
    /// holding super-block k's sub-block j: each super-block's largest scale and min (ggml's "if (s &gt; max) max = s" from
    /// 0: NaN and −0 lanes count as 0, after which the order of the maxima does not matter), the 6-bit levels against
    /// them, f16 d and dmin and the 12 scale bytes into each block of <paramref name="y"/>, and into
    /// <paramref name="d"/>/<paramref name="dm"/> (32 each) the sub-block scales and mins that requantize the levels.</summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void EncodeScales(LanePair scale, LanePair min, Span<byte> y, int blockBytes, Span<float> d, Span<float> dm)
    {
        Span<int> ls = stackalloc int[LanePair.Lanes];
        Span<int> lm = stackalloc int[LanePair.Lanes];
        Span<float> maxScale = stackalloc float[LanePair.Lanes];
        Span<float> maxMin = stackalloc float[LanePair.Lanes];
        Levels(scale.A, out var maxA).CopyTo(ls);
        Levels(scale.B, out var maxB).CopyTo(ls[16..]);
        maxA.CopyTo(maxScale);
        maxB.CopyTo(maxScale[16..]);
        Levels(min.A, out maxA).CopyTo(lm);
        Levels(min.B, out maxB).CopyTo(lm[16..]);
        maxA.CopyTo(maxMin);
        maxB.CopyTo(maxMin[16..]);
        for (int k = 0; k < y.Length / blockBytes; k++)
        {
            var yb = y.Slice(k * blockBytes, blockBytes);
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(maxScale[8 * k] / 63f));
            BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], QuantMath.ToHalf(maxMin[8 * k] / 63f));
            float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            float mAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
            var sc = yb.Slice(4, 12);
            for (int j = 0; j < 4; ++j)
            {
                int sl = ls[8 * k + j], ml = lm[8 * k + j], sh = ls[8 * k + 4 + j], mh = lm[8 * k + 4 + j];
                sc[j] = (byte)(sl | (sh >> 4) << 6);
                sc[j + 4] = (byte)(ml | (mh >> 4) << 6);
                sc[j + 8] = (byte)((sh & 0xF) | (mh & 0xF) << 4);
            }
            for (int j = 8 * k; j < 8 * k + 8; ++j)
            {
                d[j] = dAll * ls[j];
                dm[j] = mAll * lm[j];
            }
        }
    }

    /// <summary>Each lane's level min((byte)nearest_int(63/max · v), 63), max over its 8-lane super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Levels(Vector512<float> v, out Vector512<float> max)
    {
        var lane = Vector512<int>.Indices;
        max = Vector512.MaxNative(v, Vector512<float>.Zero);   // x86 max: the second operand on NaN and on ±0
        max = Vector512.Max(max, Vector512.Shuffle(max, lane ^ Vector512.Create(1)));
        max = Vector512.Max(max, Vector512.Shuffle(max, lane ^ Vector512.Create(2)));
        max = Vector512.Max(max, Vector512.Shuffle(max, lane ^ Vector512.Create(4)));
        var inverse = Vector512.ConditionalSelect(Vector512.GreaterThan(max, Vector512<float>.Zero), Vector512.Create(63f) / max, Vector512<float>.Zero);
        return Vector512.Min(QuantMathLanes.NearestInt(inverse * v) & Vector512.Create(0xFF), Vector512.Create(63));
    }

    /// <summary>Sub-block j's make_qp_quants scale and min levels into the packed 12 bytes. A negative sub-block scale
    /// wraps to a byte above 63; ggml clamps it for Q5_K but not for Q4_K, where its stray high bits land in the packed
    /// array as they do in llama.cpp.</summary>
    static void PutScaleMin(int j, byte ls, byte lm, Span<byte> sc, int nmax)
    {
        if (nmax == 15) QuantMath.PutScaleMinK4(j, ls, lm, sc);
        else QuantMath.PutScaleMinK4(j, Math.Min((byte)63, ls), Math.Min((byte)63, lm), sc);
    }

    /// <summary>f16 d and dmin into the block, then the levels requantized with the rounded sub-block scales and mins
    /// (already packed) into <paramref name="L"/>; returns the sub-blocks whose scale rounded to 0 as bits.</summary>
    static int Requantize(ReadOnlySpan<float> xb, Span<byte> yb, float dBlock, float mBlock, Span<int> L, int nmax)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(dBlock));
        BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], QuantMath.ToHalf(mBlock));
        var sc = yb.Slice(4, 12);
        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
        float mAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
        Span<float> d = stackalloc float[QK / 32];
        Span<float> dm = stackalloc float[QK / 32];
        for (int j = 0; j < QK / 32; ++j)
        {
            QuantMath.GetScaleMinK4(j, sc, out byte s, out byte m);
            d[j] = dAll * s;
            dm[j] = mAll * m;
        }
        return QuantMath.Requantize(xb, 32, dm, d, 0, nmax, 0, L);
    }

    /// <summary>The levels into the block's bit fields (Q4_K: nibbles; Q5_K: nibbles and high bits).</summary>
    internal static void Pack(Span<byte> yb, ReadOnlySpan<int> L, int nmax)
    {
        if (!Avx512F.IsSupported)
        {
            PackReference(yb, L, nmax);
            return;
        }
        ref int levels = ref MemoryMarshal.GetReference(L[..QK]);
        if (nmax == 15)
        {
            // q[32k + l] = L[64k + l] | L[64k + 32 + l] << 4, sixteen at a time
            var q = yb.Slice(16, QK / 2);
            for (int j = 0; j < QK; j += 64)
                for (int l = 0; l < 32; l += 16)
                {
                    var low = Vector512.LoadUnsafe(ref levels, (nuint)(j + l));
                    var high = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 32));
                    Avx512F.ConvertToVector128Byte(low | (high << 4)).CopyTo(q[(j / 2 + l)..]);
                }
            return;
        }
        // Q5_K (levels 0…31): ql as Q4_K's nibbles; bit 4 of L[64k + l] is qh[l] bit 2k, of L[64k + 32 + l] bit 2k + 1
        var qh = yb.Slice(16, QK / 8);
        var ql = yb.Slice(48, QK / 2);
        var nibble = Vector512.Create(0xF);
        var one = Vector512.Create(1);
        for (int l = 0; l < 32; l += 16)
        {
            var high = Vector512<int>.Zero;
            for (int j = 0, k = 0; j < QK; j += 64, k += 2)
            {
                var a = Vector512.LoadUnsafe(ref levels, (nuint)(j + l));
                var b = Vector512.LoadUnsafe(ref levels, (nuint)(j + l + 32));
                Avx512F.ConvertToVector128Byte((a & nibble) | ((b & nibble) << 4)).CopyTo(ql[(j / 2 + l)..]);
                high |= (((a >>> 4) & one) << k) | (((b >>> 4) & one) << (k + 1));
            }
            Avx512F.ConvertToVector128Byte(high).CopyTo(qh[l..]);
        }
    }

    /// <summary>The scalar <see cref="Pack"/>: the reference the vector form is tested against.</summary>
    internal static void PackReference(Span<byte> yb, ReadOnlySpan<int> L, int nmax)
    {
        if (nmax == 15)
        {
            var q = yb.Slice(16, QK / 2);
            for (int j = 0; j < QK; j += 64)
                for (int l = 0; l < 32; ++l)
                    q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
        }
        else
        {
            var qh = yb.Slice(16, QK / 8);
            var ql = yb.Slice(48, QK / 2);
            qh.Clear();
            byte m1 = 1, m2 = 2;
            for (int n = 0; n < QK; n += 64)
            {
                for (int j = 0; j < 32; ++j)
                {
                    int l1 = L[n + j];
                    if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                    int l2 = L[n + j + 32];
                    if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                    ql[n / 2 + j] = (byte)(l1 | (l2 << 4));
                }
                m1 <<= 2; m2 <<= 2;
            }
        }
    }

    public static void DequantizeRowQ4K(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q4KBytes, Q4KBytes);
            var xb = x.Slice(i * QK, QK);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            float min = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
            var sc = yb.Slice(4, 12);
            for (int j = 0, isc = 0; j < QK; j += 64, isc += 2)
            {
                var q = yb.Slice(16 + j / 2, 32);
                QuantMath.GetScaleMinK4(isc, sc, out byte s1, out byte m1);
                QuantMath.GetScaleMinK4(isc + 1, sc, out byte s2, out byte m2);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; ++l) xb[j + l] = d1 * (q[l] & 0xF) - mm1;
                for (int l = 0; l < 32; ++l) xb[j + 32 + l] = d2 * (q[l] >> 4) - mm2;
            }
        }
    }

    public static void DequantizeRowQ5K(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q5KBytes, Q5KBytes);
            var xb = x.Slice(i * QK, QK);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            float min = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
            var sc = yb.Slice(4, 12);
            var qh = yb.Slice(16, 32);
            byte u1 = 1, u2 = 2;
            for (int j = 0, isc = 0; j < QK; j += 64, isc += 2)
            {
                var ql = yb.Slice(48 + j / 2, 32);
                QuantMath.GetScaleMinK4(isc, sc, out byte s1, out byte m1);
                QuantMath.GetScaleMinK4(isc + 1, sc, out byte s2, out byte m2);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; ++l) xb[j + l] = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - mm1;
                for (int l = 0; l < 32; ++l) xb[j + 32 + l] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - mm2;
                u1 <<= 2; u2 <<= 2;
            }
        }
    }
}
