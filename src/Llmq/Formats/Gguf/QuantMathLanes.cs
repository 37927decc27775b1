using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>The K-quant scale searches of <see cref="QuantMath"/> run on 16 independent groups at once, one group per
/// <see cref="Vector512{T}"/> lane: element i of every group sits in vector i (see <see cref="Transpose"/>). Each lane
/// executes exactly the scalar search's float32 operations in the scalar order — sums still accumulate element by
/// element, branches become per-lane selects — so every lane's result is bit-identical to <see cref="QuantMath"/> on that
/// group (tested against it), while the work is spread over 16 lanes instead of being a chain of dependent scalar adds.</summary>
internal static class QuantMathLanes
{
    public const int Lanes = 16;

    /// <summary>Lane g of <c>destination[i]</c> = <c>source[g·n + i]</c> for the (up to 16) groups of n consecutive values
    /// in <paramref name="source"/>; lanes without a group are zero.</summary>
    public static void Transpose(ReadOnlySpan<float> source, int n, Span<Vector512<float>> destination)
    {
        int groups = source.Length / n;
        Span<float> flat = MemoryMarshal.Cast<Vector512<float>, float>(destination[..n]);
        if (groups < Lanes) flat.Clear();
        for (int g = 0; g < groups; g++)
        {
            var group = source.Slice(g * n, n);
            for (int i = 0; i < n; i++) flat[i * Lanes + g] = group[i];
        }
    }

    /// <summary>ggml's nearest_int (the 1.5·2^23 trick) on every lane, with its exact bit pattern for any input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> NearestInt(Vector512<float> x) =>
        ((x + Vector512.Create(12582912f)).AsInt32() & Vector512.Create(0x007fffff)) - Vector512.Create(0x00400000);

    /// <summary>Whether a comparison mask is set in every lane (as bits: a set float lane is a NaN, equal to nothing).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool AllLanes(Vector512<float> mask) => mask.ExtractMostSignificantBits() == 0xFFFF;

    /// <summary>nearest_int for |x| &lt; 2^22 (where the callers prove their values lie), as a float: the 1.5·2^23 sum
    /// rounds to an integer exactly as <see cref="NearestInt"/>'s does, and subtracting the constant back is exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> RoundSmall(Vector512<float> x) => (x + Vector512.Create(12582912f)) - Vector512.Create(12582912f);

    /// <summary><see cref="QuantMath.MakeQkx2Quants"/> (<paramref name="guardedLevels"/> false) or
    /// <see cref="QuantMath.MakeQkx3Quants"/> (true) on 16 groups of n = x.Length values with explicit weights.
    /// <paramref name="L"/> receives the levels as floats; <paramref name="laux"/> is scratch of the same length.</summary>
    public static Vector512<float> MakeQkxQuants(int nmax, ReadOnlySpan<Vector512<float>> x, ReadOnlySpan<Vector512<float>> weights,
        Span<Vector512<float>> L, Span<Vector512<float>> laux, out Vector512<float> theMin,
        float rmin, float rdelta, int nstep, bool useMad, bool guardedLevels)
    {
        int n = x.Length;
        // the inner loops index by reference: every span is at least n long (the slices check it)
        ref var X = ref MemoryMarshal.GetReference(x);
        ref var W = ref MemoryMarshal.GetReference(weights[..n]);
        ref var Lr = ref MemoryMarshal.GetReference(L[..n]);
        ref var Ar = ref MemoryMarshal.GetReference(laux[..n]);
        var zero = Vector512<float>.Zero;
        var nmaxF = Vector512.Create((float)nmax);
        var nmaxI = Vector512.Create(nmax);
        var small = Vector512.Create(4194304f);   // 2^22

        var min = X;
        var max = X;
        var sumW = W;
        var sumX = sumW * X;
        var numbers = Vector512.Equals(X, X);   // lanes without NaN
        for (int i = 1; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var wi = Unsafe.Add(ref W, i);
            numbers &= Vector512.Equals(xi, xi);
            min = Vector512.ConditionalSelect(Vector512.LessThan(xi, min), xi, min);
            max = Vector512.ConditionalSelect(Vector512.GreaterThan(xi, max), xi, max);
            sumW += wi;
            sumX += wi * xi;
        }
        var lowest = min;
        min = Vector512.ConditionalSelect(Vector512.GreaterThan(min, zero), zero, min);
        var empty = Vector512.LessThanOrEqual(max, min);   // such a lane returns scale 0, levels 0, the min
        var emptyMin = min;

        var iscale = nmaxF / (max - min);
        var scale = Vector512<float>.One / iscale;
        var bestError = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var l = Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(iscale * (xi - min)), Vector512<int>.Zero), nmaxI));
            Unsafe.Add(ref Lr, i) = l;
            var diff = scale * l + min - xi;
            diff = useMad ? Vector512.Abs(diff) : diff * diff;
            bestError += Unsafe.Add(ref W, i) * diff;
        }
        for (int step = 0; step <= nstep && nstep >= 1; ++step)
        {
            iscale = Vector512.Create(rmin + rdelta * step + nmax) / (max - min);
            // iscale·(x − min) is monotone in x, so the lane's extremes bound every level argument: when all lie within
            // ±2^22 the float rounding is exact (the guarded form clamps to [0, nmax] first, so it always is)
            bool fast = guardedLevels || AllLanes(empty | (numbers
                & Vector512.LessThan(Vector512.Abs(iscale * (lowest - min)), small) & Vector512.LessThan(Vector512.Abs(iscale * (max - min)), small)));
            Vector512<float> sumL = zero, sumL2 = zero, sumXl = zero;
            for (int i = 0; i < n; ++i)
            {
                var xi = Unsafe.Add(ref X, i);
                var v = iscale * (xi - min);
                Vector512<float> l;
                if (guardedLevels)
                    l = Vector512.ConditionalSelect(Vector512.GreaterThan(v, zero),
                        RoundSmall(Vector512.ConditionalSelect(Vector512.LessThan(v, nmaxF), v, nmaxF)), zero);
                else if (fast)
                    l = Vector512.MinNative(Vector512.MaxNative(RoundSmall(v), zero), nmaxF);   // no NaN, no −0 here
                else
                    l = Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(v), Vector512<int>.Zero), nmaxI));
                Unsafe.Add(ref Ar, i) = l;
                var wl = Unsafe.Add(ref W, i) * l;
                sumL += wl;
                sumL2 += wl * l;
                sumXl += wl * xi;
            }
            var D = sumW * sumL2 - sumL * sumL;
            var solvable = Vector512.GreaterThan(D, zero);
            if (solvable == Vector512<float>.Zero) continue;
            var thisScale = (sumW * sumXl - sumX * sumL) / D;
            var thisMin = (sumL2 * sumX - sumL * sumXl) / D;
            var positiveMin = Vector512.GreaterThan(thisMin, zero);
            thisMin = Vector512.ConditionalSelect(positiveMin, zero, thisMin);
            thisScale = Vector512.ConditionalSelect(positiveMin, sumXl / sumL2, thisScale);
            var error = zero;
            for (int i = 0; i < n; ++i)
            {
                var diff = thisScale * Unsafe.Add(ref Ar, i) + thisMin - Unsafe.Add(ref X, i);
                diff = useMad ? Vector512.Abs(diff) : diff * diff;
                error += Unsafe.Add(ref W, i) * diff;
            }
            var better = solvable & Vector512.LessThan(error, bestError);
            if (better == Vector512<float>.Zero) continue;
            for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = Vector512.ConditionalSelect(better, Unsafe.Add(ref Ar, i), Unsafe.Add(ref Lr, i));
            bestError = Vector512.ConditionalSelect(better, error, bestError);
            scale = Vector512.ConditionalSelect(better, thisScale, scale);
            min = Vector512.ConditionalSelect(better, thisMin, min);
        }
        for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = Vector512.ConditionalSelect(empty, zero, Unsafe.Add(ref Lr, i));
        theMin = Vector512.ConditionalSelect(empty, emptyMin, min) ^ Vector512.Create(-0f);   // -min, sign bit flipped as in C
        return Vector512.ConditionalSelect(empty, zero, scale);
    }

    /// <summary><see cref="QuantMath.MakeQxQuants"/> with rmse_type 1 on 16 groups of n = x.Length values, weighted by
    /// <paramref name="weights"/> (x² or the importance weights). <paramref name="L"/> receives the stored levels
    /// (l + nmax) as floats.</summary>
    public static Vector512<float> MakeQxQuants(int nmax, ReadOnlySpan<Vector512<float>> x, ReadOnlySpan<Vector512<float>> weights,
        Span<Vector512<float>> L, Span<Vector512<float>> laux)
    {
        int n = x.Length;
        ref var X = ref MemoryMarshal.GetReference(x);
        ref var W = ref MemoryMarshal.GetReference(weights[..n]);
        ref var Lr = ref MemoryMarshal.GetReference(L[..n]);
        ref var Ar = ref MemoryMarshal.GetReference(laux[..n]);
        var zero = Vector512<float>.Zero;
        var lo = Vector512.Create((float)-nmax);
        var hi = Vector512.Create((float)(nmax - 1));

        Vector512<float> max = zero, amax = zero;
        var numbers = Vector512<float>.AllBitsSet;   // lanes without NaN
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var ax = Vector512.Abs(xi);
            var larger = Vector512.GreaterThan(ax, amax);
            amax = Vector512.ConditionalSelect(larger, ax, amax);
            max = Vector512.ConditionalSelect(larger, xi, max);
            numbers &= Vector512.Equals(xi, xi);
        }
        var empty = Vector512.LessThan(amax, Vector512.Create(QuantMath.GroupMaxEps));
        // |iscale·x| ≤ (nmax + 0.9)·|x|/amax stays far below 2^22 in a lane with amax ≥ GROUP_MAX_EPS, finite and no NaN,
        // so the float rounding is exact there; an empty lane's levels are discarded
        bool fast = AllLanes(empty | (numbers & Vector512.LessThan(amax, Vector512.Create(float.PositiveInfinity))));

        // w·x·l is (w·x)·l in ggml: the product w·x is the same float at every step
        Span<Vector512<float>> wxs = stackalloc Vector512<float>[n];
        ref var WX = ref MemoryMarshal.GetReference(wxs);
        for (int i = 0; i < n; ++i) Unsafe.Add(ref WX, i) = Unsafe.Add(ref W, i) * Unsafe.Add(ref X, i);

        var scale = zero;
        var best = zero;
        for (int step = 0; step <= 18; ++step)
        {
            // step 0 is the plain rounding at −nmax/max; then the inverse scales −(nmax ± 0.1·k)/max, k = 9 … 1, 1 … 9
            int k = step == 0 ? 0 : step <= 9 ? step - 10 : step - 9;
            var iscale = Vector512.Create(step == 0 ? -nmax : -(nmax + 0.1f * k)) / max;
            ref var target = ref (step == 0 ? ref Lr : ref Ar);
            Vector512<float> sumlx = zero, suml2 = zero;
            for (int i = 0; i < n; ++i)
            {
                var v = iscale * Unsafe.Add(ref X, i);
                var l = fast
                    ? Vector512.MinNative(Vector512.MaxNative(RoundSmall(v), lo), hi)   // no NaN, no −0 here
                    : Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(v), Vector512.Create(-nmax)), Vector512.Create(nmax - 1)));
                Unsafe.Add(ref target, i) = l;
                sumlx += Unsafe.Add(ref WX, i) * l;
                suml2 += Unsafe.Add(ref W, i) * l * l;
            }
            if (step == 0)
            {
                scale = Vector512.ConditionalSelect(Vector512.Equals(suml2, zero), zero, sumlx / suml2);
                best = scale * sumlx;
                continue;
            }
            var better = Vector512.GreaterThan(suml2, zero) & Vector512.GreaterThan(sumlx * sumlx, best * suml2);
            if (better == Vector512<float>.Zero) continue;
            for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = Vector512.ConditionalSelect(better, Unsafe.Add(ref Ar, i), Unsafe.Add(ref Lr, i));
            scale = Vector512.ConditionalSelect(better, sumlx / suml2, scale);
            best = Vector512.ConditionalSelect(better, scale * sumlx, best);
        }
        var offset = Vector512.Create((float)nmax);
        for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = Vector512.ConditionalSelect(empty, zero, Unsafe.Add(ref Lr, i) + offset);
        return Vector512.ConditionalSelect(empty, zero, scale);
    }
}
