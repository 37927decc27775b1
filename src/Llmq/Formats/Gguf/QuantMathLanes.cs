using System.Runtime.CompilerServices;
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
        Span<float> flat = System.Runtime.InteropServices.MemoryMarshal.Cast<Vector512<float>, float>(destination[..n]);
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

    /// <summary><see cref="QuantMath.MakeQkx2Quants"/> (<paramref name="guardedLevels"/> false) or
    /// <see cref="QuantMath.MakeQkx3Quants"/> (true) on 16 groups of n = x.Length values with explicit weights.
    /// <paramref name="L"/> receives the levels as floats; <paramref name="laux"/> is scratch of the same length.</summary>
    public static Vector512<float> MakeQkxQuants(int nmax, ReadOnlySpan<Vector512<float>> x, ReadOnlySpan<Vector512<float>> weights,
        Span<Vector512<float>> L, Span<Vector512<float>> laux, out Vector512<float> theMin,
        float rmin, float rdelta, int nstep, bool useMad, bool guardedLevels)
    {
        int n = x.Length;
        weights = weights[..n];
        L = L[..n];
        laux = laux[..n];
        var zero = Vector512<float>.Zero;
        var nmaxF = Vector512.Create((float)nmax);
        var nmaxI = Vector512.Create(nmax);

        var min = x[0];
        var max = x[0];
        var sumW = weights[0];
        var sumX = sumW * x[0];
        for (int i = 1; i < n; ++i)
        {
            var xi = x[i];
            min = Vector512.ConditionalSelect(Vector512.LessThan(xi, min), xi, min);
            max = Vector512.ConditionalSelect(Vector512.GreaterThan(xi, max), xi, max);
            sumW += weights[i];
            sumX += weights[i] * xi;
        }
        min = Vector512.ConditionalSelect(Vector512.GreaterThan(min, zero), zero, min);
        var empty = Vector512.LessThanOrEqual(max, min);   // such a lane returns scale 0, levels 0, the min
        var emptyMin = min;

        var iscale = nmaxF / (max - min);
        var scale = Vector512<float>.One / iscale;
        var bestError = zero;
        for (int i = 0; i < n; ++i)
        {
            var l = Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(iscale * (x[i] - min)), Vector512<int>.Zero), nmaxI));
            L[i] = l;
            var diff = scale * l + min - x[i];
            diff = useMad ? Vector512.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep >= 1)
        {
            for (int step = 0; step <= nstep; ++step)
            {
                iscale = Vector512.Create(rmin + rdelta * step + nmax) / (max - min);
                Vector512<float> sumL = zero, sumL2 = zero, sumXl = zero;
                for (int i = 0; i < n; ++i)
                {
                    var v = iscale * (x[i] - min);
                    Vector512<int> li;
                    if (guardedLevels)
                    {
                        li = NearestInt(Vector512.ConditionalSelect(Vector512.LessThan(v, nmaxF), v, nmaxF));
                        li = Vector512.ConditionalSelect(Vector512.GreaterThan(v, zero).AsInt32(), li, Vector512<int>.Zero);
                    }
                    else
                        li = Vector512.Min(Vector512.Max(NearestInt(v), Vector512<int>.Zero), nmaxI);
                    var l = Vector512.ConvertToSingle(li);
                    laux[i] = l;
                    var wl = weights[i] * l;
                    sumL += wl;
                    sumL2 += wl * l;
                    sumXl += wl * x[i];
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
                    var diff = thisScale * laux[i] + thisMin - x[i];
                    diff = useMad ? Vector512.Abs(diff) : diff * diff;
                    error += weights[i] * diff;
                }
                var better = solvable & Vector512.LessThan(error, bestError);
                if (better == Vector512<float>.Zero) continue;
                for (int i = 0; i < n; ++i) L[i] = Vector512.ConditionalSelect(better, laux[i], L[i]);
                bestError = Vector512.ConditionalSelect(better, error, bestError);
                scale = Vector512.ConditionalSelect(better, thisScale, scale);
                min = Vector512.ConditionalSelect(better, thisMin, min);
            }
        }
        for (int i = 0; i < n; ++i) L[i] = Vector512.ConditionalSelect(empty, zero, L[i]);
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
        weights = weights[..n];
        L = L[..n];
        laux = laux[..n];
        var zero = Vector512<float>.Zero;
        var lo = Vector512.Create(-nmax);
        var hi = Vector512.Create(nmax - 1);

        Vector512<float> max = zero, amax = zero;
        for (int i = 0; i < n; ++i)
        {
            var ax = Vector512.Abs(x[i]);
            var larger = Vector512.GreaterThan(ax, amax);
            amax = Vector512.ConditionalSelect(larger, ax, amax);
            max = Vector512.ConditionalSelect(larger, x[i], max);
        }
        var empty = Vector512.LessThan(amax, Vector512.Create(QuantMath.GroupMaxEps));

        // w·x·l is (w·x)·l in ggml: the product w·x is the same float at every step
        Span<Vector512<float>> wx = stackalloc Vector512<float>[n];
        for (int i = 0; i < n; ++i) wx[i] = weights[i] * x[i];

        var iscale = Vector512.Create((float)-nmax) / max;
        Vector512<float> sumlx = zero, suml2 = zero;
        for (int i = 0; i < n; ++i)
        {
            var l = Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(iscale * x[i]), lo), hi));
            L[i] = l;
            sumlx += wx[i] * l;
            suml2 += weights[i] * l * l;
        }
        var scale = Vector512.ConditionalSelect(Vector512.Equals(suml2, zero), zero, sumlx / suml2);
        var best = scale * sumlx;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = Vector512.Create(-(nmax + 0.1f * step)) / max;
            sumlx = suml2 = zero;
            for (int i = 0; i < n; ++i)
            {
                var l = Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(iscale * x[i]), lo), hi));
                laux[i] = l;
                sumlx += wx[i] * l;
                suml2 += weights[i] * l * l;
            }
            var better = Vector512.GreaterThan(suml2, zero) & Vector512.GreaterThan(sumlx * sumlx, best * suml2);
            if (better == Vector512<float>.Zero) continue;
            for (int i = 0; i < n; ++i) L[i] = Vector512.ConditionalSelect(better, laux[i], L[i]);
            scale = Vector512.ConditionalSelect(better, sumlx / suml2, scale);
            best = Vector512.ConditionalSelect(better, scale * sumlx, best);
        }
        var offset = Vector512.Create((float)nmax);
        for (int i = 0; i < n; ++i) L[i] = Vector512.ConditionalSelect(empty, zero, L[i] + offset);
        return Vector512.ConditionalSelect(empty, zero, scale);
    }
}
