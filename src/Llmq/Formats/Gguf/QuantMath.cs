using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>The scale/level searches shared by ggml's block quantizers (ggml-quants.c: nearest_int, make_qx_quants,
/// make_q3_quants, make_qkx2_quants, make_qkx3_quants, make_qp_quants). Written to keep ggml's float32 operation order
/// exactly — every sum accumulates left to right, <c>a*b*c</c> is <c>(a*b)*c</c>, and nothing is fused into an FMA —
/// because the chosen scale depends on the last bit of those sums and the output must match llama.cpp byte for byte.</summary>
internal static class QuantMath
{
    /// <summary>ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is all zeros.</summary>
    public const float GroupMaxEps = 1e-15f;

    /// <summary>Round to nearest, ties to even, by the 1.5·2^23 trick (exact for |x| ≤ 4194303, as ggml asserts).
    /// Reproduces ggml's bit pattern for any input, so out-of-range values behave as in llama.cpp too.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x)
    {
        float v = x + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Clamp(int v, int lo, int hi) => v < lo ? lo : v > hi ? hi : v;

    /// <summary>Symmetric levels L in [0, 2·nmax) (stored as l + nmax) for n values; returns the scale.
    /// rmseType 0 = plain rounding; 1 = weights x² (or <paramref name="qw"/>), then a ±0.9 search of the inverse scale.</summary>
    public static float MakeQxQuants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, int rmseType, ReadOnlySpan<float> qw)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        if (rmseType == 0)
        {
            for (int i = 0; i < n; ++i)
                L[i] = (sbyte)(nmax + Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
            return 1 / iscale;
        }
        bool returnEarly = false;
        if (rmseType < 0) { rmseType = -rmseType; returnEarly = true; }
        bool hasWeights = !qw.IsEmpty;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            L[i] = (sbyte)(l + nmax);
            float w = Weight(hasWeights, qw, rmseType, x[i], i);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        if (returnEarly) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
                float w = Weight(hasWeights, qw, rmseType, x[i], i);
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; ++i)
                    L[i] = (sbyte)(nmax + Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Weight(bool hasWeights, ReadOnlySpan<float> qw, int rmseType, float x, int i) =>
        hasWeights ? qw[i] : rmseType == 1 ? x * x : rmseType == 2 ? 1 : rmseType == 3 ? MathF.Abs(x) : MathF.Sqrt(MathF.Abs(x));

    /// <summary>Q3_K's symmetric levels (stored as l + nmax) with an optional coordinate-descent refinement weighted by x².</summary>
    public static float MakeQ3Quants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, bool doRmse)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        if (doRmse)
        {
            float sumlx = 0, suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
                L[i] = (sbyte)l;
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; ++itry)
            {
                int changed = 0;
                for (int i = 0; i < n; ++i)
                {
                    float w = x[i] * x[i];
                    float slx = sumlx - w * x[i] * L[i];
                    if (slx > 0)
                    {
                        float sl2 = suml2 - w * L[i] * L[i];
                        int newL = Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
                        if (newL != L[i])
                        {
                            slx += w * x[i] * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                            {
                                L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                                ++changed;
                            }
                        }
                    }
                }
                if (changed == 0) break;
            }
            for (int i = 0; i < n; ++i) L[i] += (sbyte)nmax;
            return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
        }
        for (int i = 0; i < n; ++i)
            L[i] = (sbyte)(Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1) + nmax);
        return 1 / iscale;
    }

    /// <summary>Asymmetric levels in [0, nmax] with a min (returned negated in <paramref name="theMin"/>): rounds, then tries
    /// nstep+1 inverse scales (rmin + rdelta·is + nmax)/(max − min), each refit by weighted least squares (make_qkx2_quants).</summary>
    public static float MakeQkx2Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad) =>
        MakeQkxQuants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad, guardedLevels: false);

    /// <summary>make_qkx3_quants: as <see cref="MakeQkx2Quants"/> but with default weights x² when none are given and
    /// trial levels computed from a clamped value, so a degenerate min cannot overflow the rounding.</summary>
    public static float MakeQkx3Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad) =>
        MakeQkxQuants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad, guardedLevels: true);

    static float MakeQkxQuants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad, bool guardedLevels)
    {
        bool hasWeights = !weights.IsEmpty;
        float min = x[0], max = x[0];
        float sumW = hasWeights ? weights[0] : x[0] * x[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; ++i)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = hasWeights ? weights[i] : x[i] * x[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max <= min)
        {
            L[..n].Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Clamp(l, 0, nmax);
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            float w = hasWeights ? weights[i] : x[i] * x[i];
            bestError += w * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; ++step)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; ++i)
            {
                float v = iscale * (x[i] - min);
                int l = guardedLevels ? (v > 0 ? NearestInt(v < nmax ? v : nmax) : 0) : Clamp(NearestInt(v), 0, nmax);
                Laux[i] = (byte)l;
                float w = hasWeights ? weights[i] : x[i] * x[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXl - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float error = 0;
                for (int i = 0; i < n; ++i)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    float w = hasWeights ? weights[i] : x[i] * x[i];
                    error += w * diff;
                }
                if (error < bestError)
                {
                    Laux[..n].CopyTo(L);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>Non-negative levels in [0, nmax] for the (non-negative) sub-block scales or mins of a super-block,
    /// weighted by <paramref name="quantWeights"/> (make_qp_quants); returns the super-block scale.</summary>
    public static float MakeQpQuants(int n, int nmax, ReadOnlySpan<float> x, Span<byte> L, ReadOnlySpan<float> quantWeights)
    {
        float max = 0;
        for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
        if (max < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; ++i) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; ++i)
        {
            float diff = x[i] - scale * L[i];
            bestMse += quantWeights[i] * diff * diff;
        }
        for (int step = -4; step <= 4; ++step)
        {
            if (step == 0) continue;
            float iscaleIs = (0.1f * step + nmax) / max;
            float scaleIs = 1 / iscaleIs;
            float mse = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = Math.Min(nmax, NearestInt(iscaleIs * x[i]));
                float diff = x[i] - scaleIs * l;
                mse += quantWeights[i] * diff * diff;
            }
            if (mse < bestMse)
            {
                bestMse = mse;
                iscale = iscaleIs;
            }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            float w = quantWeights[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry)
        {
            int changed = 0;
            for (int i = 0; i < n; ++i)
            {
                float w = quantWeights[i];
                float slx = sumlx - w * x[i] * L[i];
                float sl2 = suml2 - w * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL; sumlx = slx; suml2 = sl2;
                            ++changed;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }

    /// <summary>The sums of squares of the <paramref name="sums"/>.Length groups of <paramref name="n"/> consecutive values
    /// in <paramref name="x"/>, each summed left to right as ggml sums it, eight groups at a time in registers so that
    /// their independent chains of adds overlap (one chain is bound by the add latency). Accumulating in the span
    /// instead made each add a store and a load, which stalled whenever the stack fell 4 KB from the data.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SumsOfSquares(ReadOnlySpan<float> x, int n, Span<float> sums)
    {
        if (x.Length < sums.Length * n) throw new ArgumentException($"{sums.Length} groups of {n} do not fit {x.Length} values");
        ref float xs = ref MemoryMarshal.GetReference(x);
        int k = 0;
        for (; k + 8 <= sums.Length; k += 8)
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
            ref float g = ref Unsafe.Add(ref xs, k * n);
            for (int l = 0; l < n; ++l)
            {
                float v0 = Unsafe.Add(ref g, l), v1 = Unsafe.Add(ref g, n + l), v2 = Unsafe.Add(ref g, 2 * n + l), v3 = Unsafe.Add(ref g, 3 * n + l);
                float v4 = Unsafe.Add(ref g, 4 * n + l), v5 = Unsafe.Add(ref g, 5 * n + l), v6 = Unsafe.Add(ref g, 6 * n + l), v7 = Unsafe.Add(ref g, 7 * n + l);
                s0 += v0 * v0; s1 += v1 * v1; s2 += v2 * v2; s3 += v3 * v3;
                s4 += v4 * v4; s5 += v5 * v5; s6 += v6 * v6; s7 += v7 * v7;
            }
            sums[k] = s0; sums[k + 1] = s1; sums[k + 2] = s2; sums[k + 3] = s3;
            sums[k + 4] = s4; sums[k + 5] = s5; sums[k + 6] = s6; sums[k + 7] = s7;
        }
        for (; k < sums.Length; ++k)
        {
            float s = 0;
            foreach (float v in x.Slice(k * n, n)) s += v * v;
            sums[k] = s;
        }
    }

    /// <summary>A block's final levels under its rounded scales, every group in one pass: for group g (elements
    /// [g·groupSize, (g+1)·groupSize)) L[i] = clamp(nearest_int((x[i] + add[g]) / d[g]), lo, hi) + offset, unless d[g] is 0:
    /// such a group keeps its search levels (left as they are) and its bit is set in the result. An empty
    /// <paramref name="add"/> adds 0. Each element is independent, so 16 at a time give the same bits as one at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // hot: every K-quant block ends here
    public static int Requantize(ReadOnlySpan<float> x, int groupSize, ReadOnlySpan<float> add, ReadOnlySpan<float> d,
        int lo, int hi, int offset, Span<int> L)
    {
        int groups = d.Length;
        if ((!add.IsEmpty && add.Length < groups) || x.Length < groups * groupSize || L.Length < groups * groupSize)
            throw new ArgumentException($"{groups} groups of {groupSize} do not fit {x.Length} values, {L.Length} levels, {add.Length} offsets");
        int kept = 0;
        bool vector = Vector512.IsHardwareAccelerated && groupSize % Vector512<float>.Count == 0;
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref int ls = ref MemoryMarshal.GetReference(L);
        var vLo = Vector512.Create(lo);
        var vHi = Vector512.Create(hi);
        var vOffset = Vector512.Create(offset);
        for (int g = 0; g < groups; g++)
        {
            if (d[g] == 0)
            {
                kept |= 1 << g;
                continue;
            }
            int end = (g + 1) * groupSize;
            if (vector)
            {
                var vAdd = Vector512.Create(add.IsEmpty ? 0f : add[g]);
                var vD = Vector512.Create(d[g]);
                for (int i = g * groupSize; i < end; i += Vector512<float>.Count)
                {
                    var l = QuantMathLanes.NearestInt((Vector512.LoadUnsafe(ref xs, (nuint)i) + vAdd) / vD);
                    (Vector512.Min(Vector512.Max(l, vLo), vHi) + vOffset).StoreUnsafe(ref ls, (nuint)i);
                }
            }
            else
                for (int i = g * groupSize; i < end; i++) L[i] = Clamp(NearestInt((x[i] + (add.IsEmpty ? 0f : add[g])) / d[g]), lo, hi) + offset;
        }
        return kept;
    }

    /// <summary>Unpacks sub-block j's 6-bit scale and min from the 12-byte K-quant scale array (get_scale_min_k4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void GetScaleMinK4(int j, ReadOnlySpan<byte> q, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[j] & 63);
            m = (byte)(q[j + 4] & 63);
        }
        else
        {
            d = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            m = (byte)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
        }
    }

    /// <summary>Packs sub-block j's 6-bit scale and min into the 12-byte K-quant scale array (inverse of GetScaleMinK4).</summary>
    public static void PutScaleMinK4(int j, byte ls, byte lm, Span<byte> scales)
    {
        if (j < 4)
        {
            scales[j] = ls;
            scales[j + 4] = lm;
        }
        else
        {
            scales[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (byte)((ls >> 4) << 6);
            scales[j - 0] |= (byte)((lm >> 4) << 6);
        }
    }

    public static ushort ToHalf(float x) => BitConverter.HalfToUInt16Bits((Half)x);
    public static float FromHalf(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);
    /// <summary>ggml stores a scale as f16 and then uses the rounded value: this is GGML_FP16_TO_FP32(GGML_FP32_TO_FP16(x)).</summary>
    public static float RoundTripHalf(float x) => (float)(Half)x;
}
