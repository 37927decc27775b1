using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llmq.Numerics;

namespace Llmq.Formats.Gguf;

/// <summary>The K-quant scale searches of <see cref="QuantMath"/> run on 32 independent groups at once, one group per
/// lane of a <see cref="LanePair"/>: element i of every group sits in pair i (see <see cref="Transpose"/>). Each lane
/// executes exactly the scalar search's float32 operations in the scalar order — sums still accumulate element by
/// element, branches become per-lane selects — so every lane's result is bit-identical to <see cref="QuantMath"/> on that
/// group (tested against it), while the work is spread over 32 lanes instead of being a chain of dependent scalar adds.
/// The searches remember only the best inverse scale of each lane and derive its levels once at the end.</summary>
internal static class QuantMathLanes
{
    public const int Lanes = LanePair.Lanes;
    const int Parts = Lanes / 16;   // vectors in a lane pair

    /// <summary>Lane g of <c>destination[i]</c> = <c>source[g·n + i]</c> for the (up to 32) groups of n consecutive values
    /// in <paramref name="source"/>; lanes without a group are zero. Groups of 16 or 32 go through 16 × 16 vector
    /// transposes; other sizes through <see cref="TransposeReference"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static void Transpose(ReadOnlySpan<float> source, int n, Span<LanePair> destination)
    {
        int groups = source.Length / n;
        if (groups > Lanes || destination.Length < n) throw new ArgumentException($"{groups} groups of {n} do not fit {destination.Length} lane pairs");
        if (!Avx512F.IsSupported || n % 16 != 0)
        {
            TransposeReference(source, n, destination);
            return;
        }
        ref float src = ref MemoryMarshal.GetReference(source);
        ref var dst = ref Unsafe.As<LanePair, Vector512<float>>(ref MemoryMarshal.GetReference(destination));
        for (int part = 0; part < Parts; part++)
        {
            int rows = Math.Clamp(groups - 16 * part, 0, 16);
            for (int c = 0; c < n; c += 16)
                Transpose16(ref Unsafe.Add(ref src, 16 * part * n + c), n, rows, ref Unsafe.Add(ref dst, Parts * c + part));
        }
    }

    /// <summary>The scalar <see cref="Transpose"/>: the reference the vector form is tested against.</summary>
    internal static void TransposeReference(ReadOnlySpan<float> source, int n, Span<LanePair> destination)
    {
        int groups = source.Length / n;
        destination[..n].Clear();
        Span<float> flat = MemoryMarshal.Cast<LanePair, float>(destination[..n]);
        for (int g = 0; g < groups; g++)
        {
            var group = source.Slice(g * n, n);
            for (int i = 0; i < n; i++) flat[i * Lanes + g] = group[i];   // pair i: lanes 0–15 (A), then 16–31 (B)
        }
    }

    /// <summary>Rows r = 0…15 of 16 floats (row r at <paramref name="source"/> + r·<paramref name="stride"/>; rows from
    /// <paramref name="rows"/> on are zero) into columns: column c goes to <paramref name="destination"/> + c·<see cref="Parts"/>,
    /// the first vector of lane pair c. Four rounds of in-register shuffles: pairs of floats, pairs of doubles, then 128-bit lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Transpose16(ref float source, int stride, int rows, ref Vector512<float> destination)
    {
        // u{k+j}, 128-bit lane q: rows k…k+3 at column 4q + j
        FourRows(ref source, stride, rows, 0, out var u0, out var u1, out var u2, out var u3);
        FourRows(ref source, stride, rows, 4, out var u4, out var u5, out var u6, out var u7);
        FourRows(ref source, stride, rows, 8, out var u8, out var u9, out var u10, out var u11);
        FourRows(ref source, stride, rows, 12, out var u12, out var u13, out var u14, out var u15);
        Columns(ref destination, 0, u0, u4, u8, u12);
        Columns(ref destination, 1, u1, u5, u9, u13);
        Columns(ref destination, 2, u2, u6, u10, u14);
        Columns(ref destination, 3, u3, u7, u11, u15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Row(ref float source, int stride, int rows, int r) =>
        r < rows ? Vector512.LoadUnsafe(ref source, (nuint)(r * stride)) : Vector512<float>.Zero;

    /// <summary>Rows k…k+3 interleaved so that 128-bit lane q of output j holds their column 4q + j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FourRows(ref float source, int stride, int rows, int k,
        out Vector512<float> u0, out Vector512<float> u1, out Vector512<float> u2, out Vector512<float> u3)
    {
        Vector512<float> a = Row(ref source, stride, rows, k), b = Row(ref source, stride, rows, k + 1);
        Vector512<float> c = Row(ref source, stride, rows, k + 2), d = Row(ref source, stride, rows, k + 3);
        // per 128-bit lane q: t0 = a4q b4q a4q+1 b4q+1, t1 = a4q+2 b4q+2 a4q+3 b4q+3, likewise t2, t3 from c, d
        var t0 = Avx512F.UnpackLow(a, b).AsDouble();
        var t1 = Avx512F.UnpackHigh(a, b).AsDouble();
        var t2 = Avx512F.UnpackLow(c, d).AsDouble();
        var t3 = Avx512F.UnpackHigh(c, d).AsDouble();
        u0 = Avx512F.UnpackLow(t0, t2).AsSingle();
        u1 = Avx512F.UnpackHigh(t0, t2).AsSingle();
        u2 = Avx512F.UnpackLow(t1, t3).AsSingle();
        u3 = Avx512F.UnpackHigh(t1, t3).AsSingle();
    }

    /// <summary>Columns j, 4 + j, 8 + j, 12 + j from the four row groups' j-th interleaved vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Columns(ref Vector512<float> destination, int j,
        Vector512<float> rows0, Vector512<float> rows4, Vector512<float> rows8, Vector512<float> rows12)
    {
        // 128-bit lanes 0 and 2 (even) or 1 and 3 (odd) of row groups 0–3 and 4–7, then of 8–11 and 12–15
        var even0 = Avx512F.Shuffle4x128(rows0, rows4, 0x88);
        var odd0 = Avx512F.Shuffle4x128(rows0, rows4, 0xDD);
        var even1 = Avx512F.Shuffle4x128(rows8, rows12, 0x88);
        var odd1 = Avx512F.Shuffle4x128(rows8, rows12, 0xDD);
        Unsafe.Add(ref destination, Parts * j) = Avx512F.Shuffle4x128(even0, even1, 0x88);
        Unsafe.Add(ref destination, Parts * (4 + j)) = Avx512F.Shuffle4x128(odd0, odd1, 0x88);
        Unsafe.Add(ref destination, Parts * (8 + j)) = Avx512F.Shuffle4x128(even0, even1, 0xDD);
        Unsafe.Add(ref destination, Parts * (12 + j)) = Avx512F.Shuffle4x128(odd0, odd1, 0xDD);
    }

    /// <summary>The search weights of the K-quants with importance, qw·sqrt(σ² + x²), for up to 32 groups of n: the
    /// importance values (groups of n consecutive, as <see cref="Transpose"/> takes them) times sqrt(σ² + x²) of the
    /// transposed <paramref name="x"/>, into <paramref name="weights"/>; returns each lane's sum, added in ggml's order.</summary>
    public static LanePair ImportanceWeights(ReadOnlySpan<float> importance, int n, ReadOnlySpan<LanePair> x, LanePair sigma2,
        Span<LanePair> weights)
    {
        Transpose(importance, n, weights);
        var sum = LanePair.Zero;
        for (int l = 0; l < n; ++l)
        {
            weights[l] *= LanePair.Sqrt(sigma2 + x[l] * x[l]);
            sum += weights[l];
        }
        return sum;
    }

    /// <summary>ggml's nearest_int (the 1.5·2^23 trick) on every lane, with its exact bit pattern for any input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> NearestInt(Vector512<float> x) =>
        ((x + Vector512.Create(12582912f)).AsInt32() & Vector512.Create(0x007fffff)) - Vector512.Create(0x00400000);

    /// <summary>clamp(nearest_int(v), lo, hi) as floats, exact for any input (NaN, infinities, huge values included).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair ClampedNearest(LanePair v, int lo, int hi)
    {
        Vector512<float> One(Vector512<float> x) =>
            Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(NearestInt(x), Vector512.Create(lo)), Vector512.Create(hi)));
        return new(One(v.A), One(v.B));
    }

    /// <summary>nearest_int for |x| &lt; 2^22 (where the callers prove their values lie), as a float: the 1.5·2^23 sum
    /// rounds to an integer exactly as <see cref="NearestInt"/>'s does, and subtracting the constant back is exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair RoundSmall(LanePair x) => (x + LanePair.Create(12582912f)) - LanePair.Create(12582912f);

    /// <summary>The trial levels of make_qkx3_quants: v &gt; 0 ? nearest_int(min(v, nmax)) : 0, for any input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair GuardedLevels(LanePair v, LanePair nmax) =>
        LanePair.Select(LanePair.Greater(v, LanePair.Zero), RoundSmall(LanePair.Select(LanePair.Less(v, nmax), v, nmax)), LanePair.Zero);

    /// <summary><see cref="QuantMath.MakeQkx2Quants"/> (<paramref name="guardedLevels"/> false) or
    /// <see cref="QuantMath.MakeQkx3Quants"/> (true) on 32 groups of n = x.Length values with explicit weights.
    /// <paramref name="L"/> receives the levels as floats (skipped when empty: callers that rarely need them can run the
    /// scalar search for the group that does); <paramref name="laux"/> is scratch of length n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static LanePair MakeQkxQuants(int nmax, ReadOnlySpan<LanePair> x, ReadOnlySpan<LanePair> weights,
        Span<LanePair> L, Span<LanePair> laux, out LanePair theMin,
        float rmin, float rdelta, int nstep, bool useMad, bool guardedLevels)
    {
        int n = x.Length;
        // the inner loops index by reference: every span is at least n long (the slices check it)
        ref var X = ref MemoryMarshal.GetReference(x);
        ref var W = ref MemoryMarshal.GetReference(weights[..n]);
        ref var Ar = ref MemoryMarshal.GetReference(laux[..n]);
        var zero = LanePair.Zero;
        var nmaxF = LanePair.Create(nmax);

        var min = X;
        var max = X;
        var sumW = W;
        var sumX = sumW * X;
        var numbers = LanePair.Equal(X, X);   // lanes without NaN
        for (int i = 1; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var wi = Unsafe.Add(ref W, i);
            numbers &= LanePair.Equal(xi, xi);
            min = LanePair.MinNative(xi, min);   // x86 min/max keep the second operand on NaN and on ±0: ggml's "if (x < min) min = x"
            max = LanePair.MaxNative(xi, max);
            sumW += wi;
            sumX += wi * xi;
        }
        var lowest = min;
        min = LanePair.Select(LanePair.Greater(min, zero), zero, min);
        var empty = LanePair.LessOrEqual(max, min);   // such a lane returns scale 0, levels 0, the min
        var emptyMin = min;

        var iscale = nmaxF / (max - min);
        var scale = LanePair.Create(1) / iscale;
        var bestError = zero;
        bool fast = FloatLevelsExact(iscale, lowest, max, min, empty, numbers);
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var v = iscale * (xi - min);
            var l = fast ? LanePair.MinNative(LanePair.MaxNative(LanePair.Round(v), zero), nmaxF) : ClampedNearest(v, 0, nmax);
            var diff = scale * l + min - xi;
            diff = useMad ? LanePair.Abs(diff) : diff * diff;
            bestError += Unsafe.Add(ref W, i) * diff;
        }
        // the best levels are clamp(round(levelScale·(x − levelMin))): kept as the two floats, in the guarded form
        // where a trial step (not the first rounding) of make_qkx3_quants won
        var levelScale = iscale;
        var levelMin = min;
        var byTrial = zero;
        for (int step = 0; step <= nstep && nstep >= 1; ++step)
        {
            iscale = LanePair.Create(rmin + rdelta * step + nmax) / (max - min);
            fast = FloatLevelsExact(iscale, lowest, max, min, empty, numbers);
            LanePair sumL = zero, sumL2 = zero, sumXl = zero;
            // the loop in two copies, so neither holds a branch: the float form (both clamps always: cheaper than a
            // branch on which can bind), and the exact forms for lanes with NaN, infinities or huge values
            if (fast)
                for (int i = 0; i < n; ++i)
                {
                    var xi = Unsafe.Add(ref X, i);
                    var l = LanePair.MinNative(LanePair.MaxNative(LanePair.Round(iscale * (xi - min)), zero), nmaxF);   // a −0 becomes +0
                    Unsafe.Add(ref Ar, i) = l;
                    var wl = Unsafe.Add(ref W, i) * l;
                    sumL += wl;
                    sumL2 += wl * l;
                    sumXl += wl * xi;
                }
            else
                for (int i = 0; i < n; ++i)
                {
                    var xi = Unsafe.Add(ref X, i);
                    var v = iscale * (xi - min);
                    var l = guardedLevels ? GuardedLevels(v, nmaxF) : ClampedNearest(v, 0, nmax);
                    Unsafe.Add(ref Ar, i) = l;
                    var wl = Unsafe.Add(ref W, i) * l;
                    sumL += wl;
                    sumL2 += wl * l;
                    sumXl += wl * xi;
                }
            var D = sumW * sumL2 - sumL * sumL;
            var solvable = LanePair.Greater(D, zero);
            if (!LanePair.Any(solvable)) continue;
            var thisScale = (sumW * sumXl - sumX * sumL) / D;
            var thisMin = (sumL2 * sumX - sumL * sumXl) / D;
            var positiveMin = LanePair.Greater(thisMin, zero);
            if (LanePair.Any(positiveMin))   // rare: a division saved on most steps
            {
                thisMin = LanePair.Select(positiveMin, zero, thisMin);
                thisScale = LanePair.Select(positiveMin, sumXl / sumL2, thisScale);
            }
            var error = zero;
            if (useMad)
                for (int i = 0; i < n; ++i)
                    error += Unsafe.Add(ref W, i) * LanePair.Abs(thisScale * Unsafe.Add(ref Ar, i) + thisMin - Unsafe.Add(ref X, i));
            else
                for (int i = 0; i < n; ++i)
                {
                    var diff = thisScale * Unsafe.Add(ref Ar, i) + thisMin - Unsafe.Add(ref X, i);
                    error += Unsafe.Add(ref W, i) * (diff * diff);
                }
            var better = solvable & LanePair.Less(error, bestError);
            if (!LanePair.Any(better)) continue;
            bestError = LanePair.Select(better, error, bestError);
            scale = LanePair.Select(better, thisScale, scale);
            levelScale = LanePair.Select(better, iscale, levelScale);
            levelMin = LanePair.Select(better, min, levelMin);
            byTrial |= better;
            min = LanePair.Select(better, thisMin, min);
        }
        if (!L.IsEmpty)
        {
            ref var Lr = ref MemoryMarshal.GetReference(L[..n]);
            for (int i = 0; i < n; ++i)
            {
                var v = levelScale * (Unsafe.Add(ref X, i) - levelMin);
                var l = ClampedNearest(v, 0, nmax);
                if (guardedLevels) l = LanePair.Select(byTrial, GuardedLevels(v, nmaxF), l);
                Unsafe.Add(ref Lr, i) = LanePair.Select(empty, zero, l);
            }
        }
        theMin = LanePair.Select(empty, emptyMin, min) ^ LanePair.Create(-0f);   // -min, sign bit flipped as in C
        return LanePair.Select(empty, zero, scale);
    }

    /// <summary>Whether the levels clamp(nearest_int(iscale·(x − min)), 0, nmax) of a pass may be computed in float:
    /// iscale·(x − min) is monotone in x, so each lane's extremes bound every level argument; when all lie within ±2^22
    /// and no lane holds a NaN, rounding in float is nearest_int's, and make_qkx3_quants' guarded form equals the plain
    /// one. Empty lanes do not count (their results are discarded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool FloatLevelsExact(LanePair iscale, LanePair lowest, LanePair max, LanePair min, LanePair empty, LanePair numbers)
    {
        // on the halves, not through LanePair operators: their temporaries, in a method this size, push the JIT past
        // the locals it tracks, and the step loop's state then lives on the stack
        var small = Vector512.Create(4194304f);   // 2^22
        var a = empty.A | (numbers.A & Vector512.LessThan(Vector512.Abs(iscale.A * (lowest.A - min.A)), small)
            & Vector512.LessThan(Vector512.Abs(iscale.A * (max.A - min.A)), small));
        var b = empty.B | (numbers.B & Vector512.LessThan(Vector512.Abs(iscale.B * (lowest.B - min.B)), small)
            & Vector512.LessThan(Vector512.Abs(iscale.B * (max.B - min.B)), small));
        return (a.AsUInt32() & b.AsUInt32()) == Vector512<uint>.AllBitsSet;
    }

    /// <summary><see cref="QuantMath.MakeQxQuants"/> with rmse_type 1 on 32 groups of n = x.Length values, weighted by
    /// <paramref name="weights"/> (x² or the importance weights). <paramref name="L"/> receives the stored levels
    /// (l + nmax) as floats (skipped when empty).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static LanePair MakeQxQuants(int nmax, ReadOnlySpan<LanePair> x, ReadOnlySpan<LanePair> weights, Span<LanePair> L)
    {
        int n = x.Length;
        ref var X = ref MemoryMarshal.GetReference(x);
        ref var W = ref MemoryMarshal.GetReference(weights[..n]);
        var zero = LanePair.Zero;
        var lo = LanePair.Create(-nmax);
        var hi = LanePair.Create(nmax - 1);

        LanePair max = zero, amax = zero;
        var numbers = LanePair.Equal(zero, zero);   // lanes without NaN
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var ax = LanePair.Abs(xi);
            var larger = LanePair.Greater(ax, amax);
            amax = LanePair.Select(larger, ax, amax);
            max = LanePair.Select(larger, xi, max);
            numbers &= LanePair.Equal(xi, xi);
        }
        var empty = LanePair.Less(amax, LanePair.Create(QuantMath.GroupMaxEps));
        // |iscale·x| ≤ (nmax + 0.9)·|x|/amax stays far below 2^22 in a lane with amax ≥ GROUP_MAX_EPS, finite and no NaN,
        // so the float rounding is exact there; an empty lane's levels are discarded
        bool fast = LanePair.All(empty | (numbers & LanePair.Less(amax, LanePair.Create(float.PositiveInfinity))));

        // w·x·l is (w·x)·l in ggml: the product w·x is the same float at every step
        Span<LanePair> wxs = CacheLines.Align<LanePair>(stackalloc byte[CacheLines.Bytes<LanePair>(n)], n);
        ref var WX = ref MemoryMarshal.GetReference(wxs);
        for (int i = 0; i < n; ++i) Unsafe.Add(ref WX, i) = Unsafe.Add(ref W, i) * Unsafe.Add(ref X, i);

        var scale = zero;
        var best = zero;
        var levelScale = zero;   // the inverse scale of the best levels
        for (int step = 0; step <= 18; ++step)
        {
            // step 0 is the plain rounding at −nmax/max; then the inverse scales −(nmax ± 0.1·k)/max, k = 9 … 1, 1 … 9
            int k = step == 0 ? 0 : step <= 9 ? step - 10 : step - 9;
            var iscale = LanePair.Create(step == 0 ? -nmax : -(nmax + 0.1f * k)) / max;
            LanePair sumlx = zero, suml2 = zero;
            // two copies of the loop, so neither holds a branch (see MakeQkxQuants)
            if (fast)
                for (int i = 0; i < n; ++i)
                {
                    var l = LanePair.MinNative(LanePair.MaxNative(LanePair.Round(iscale * Unsafe.Add(ref X, i)), lo), hi);
                    sumlx += Unsafe.Add(ref WX, i) * l;
                    suml2 += Unsafe.Add(ref W, i) * l * l;
                }
            else
                for (int i = 0; i < n; ++i)
                {
                    var l = ClampedNearest(iscale * Unsafe.Add(ref X, i), -nmax, nmax - 1);
                    sumlx += Unsafe.Add(ref WX, i) * l;
                    suml2 += Unsafe.Add(ref W, i) * l * l;
                }
            if (step == 0)
            {
                scale = LanePair.Select(LanePair.Equal(suml2, zero), zero, sumlx / suml2);
                best = scale * sumlx;
                levelScale = iscale;
                continue;
            }
            // no branch on whether any lane improved: the steps do not depend on each other, so the core can run them
            // overlapped, where a mispredicted branch (as often taken as not) would drain it at every step
            var better = LanePair.Greater(suml2, zero) & LanePair.Greater(sumlx * sumlx, best * suml2);
            scale = LanePair.Select(better, sumlx / suml2, scale);
            best = LanePair.Select(better, scale * sumlx, best);
            levelScale = LanePair.Select(better, iscale, levelScale);
        }
        if (!L.IsEmpty)
        {
            ref var Lr = ref MemoryMarshal.GetReference(L[..n]);
            var offset = LanePair.Create(nmax);
            for (int i = 0; i < n; ++i)
                Unsafe.Add(ref Lr, i) = LanePair.Select(empty, zero, ClampedNearest(levelScale * Unsafe.Add(ref X, i), -nmax, nmax - 1) + offset);
        }
        return LanePair.Select(empty, zero, scale);
    }

    /// <summary><see cref="QuantMath.MakeQ3Quants"/> with doRmse on 32 groups of n = x.Length values: the rounding at
    /// −nmax/max, then up to five coordinate-descent passes weighted by x², each level's trial accepted per lane as the
    /// scalar branch accepts it. A lane whose pass changes nothing would change nothing in a later pass either (its state
    /// is the same), so running the passes until no lane changes is the scalar early exit. <paramref name="L"/> receives
    /// the stored levels (l + nmax) as floats.</summary>
    public static LanePair MakeQ3Quants(int nmax, ReadOnlySpan<LanePair> x, Span<LanePair> L)
    {
        Span<LanePair> scale = stackalloc LanePair[1];
        MakeQ3Quants(nmax, x, L, scale);
        return scale[0];
    }

    /// <summary><see cref="MakeQ3Quants(int, ReadOnlySpan{LanePair}, Span{LanePair})"/> on one or two sets of 32 groups
    /// (<paramref name="scales"/>.Length sets; set s is x[s·n … s·n + n), n = x.Length / sets, its levels at the same place
    /// in <paramref name="L"/>, its scales in <paramref name="scales"/>[s]). Each descent step waits on the previous one's
    /// sums through a division and a rounding, so a lone set leaves the core idle on latency; two sets interleave.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static void MakeQ3Quants(int nmax, ReadOnlySpan<LanePair> x, Span<LanePair> L, Span<LanePair> scales)
    {
        int sets = scales.Length;
        if (sets is < 1 or > 2) throw new ArgumentException($"{sets} sets: one or two are supported");
        int n = x.Length / sets;
        ref var X0 = ref MemoryMarshal.GetReference(x);
        ref var L0 = ref MemoryMarshal.GetReference(L[..(sets * n)]);
        ref var X1 = ref Unsafe.Add(ref X0, (sets - 1) * n);   // set 1 (set 0 again when alone: not used)
        ref var L1 = ref Unsafe.Add(ref L0, (sets - 1) * n);
        var state0 = Q3Start(nmax, ref X0, ref L0, n);
        var state1 = sets == 2 ? Q3Start(nmax, ref X1, ref L1, n) : state0;
        for (int itry = 0; itry < 5; ++itry)
        {
            state0.Changed = state1.Changed = LanePair.Zero;
            for (int i = 0; i < n; ++i)
            {
                Q3Step(ref state0, Unsafe.Add(ref X0, i), ref Unsafe.Add(ref L0, i), nmax);
                if (sets == 2) Q3Step(ref state1, Unsafe.Add(ref X1, i), ref Unsafe.Add(ref L1, i), nmax);
            }
            if (!LanePair.Any(state0.Changed | state1.Changed)) break;
        }
        scales[0] = Q3Finish(nmax, state0, ref L0, n);
        if (sets == 2) scales[1] = Q3Finish(nmax, state1, ref L1, n);
    }

    /// <summary>The descent state of one set of 32 groups: sums of w·x·l and w·l², lanes changed in this pass, empty lanes.</summary>
    struct Q3State
    {
        public LanePair SumLx, SumL2, Changed, Empty;
    }

    /// <summary>make_q3_quants up to the descent: the signed maximum, the rounding at −nmax/max and its sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Q3State Q3Start(int nmax, ref LanePair X, ref LanePair Lr, int n)
    {
        var zero = LanePair.Zero;
        LanePair max = zero, amax = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var ax = LanePair.Abs(xi);
            var larger = LanePair.Greater(ax, amax);
            amax = LanePair.Select(larger, ax, amax);
            max = LanePair.Select(larger, xi, max);
        }
        var iscale = LanePair.Create(-nmax) / max;
        LanePair sumlx = zero, suml2 = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var l = ClampedNearest(iscale * xi, -nmax, nmax - 1);
            Unsafe.Add(ref Lr, i) = l;
            var w = xi * xi;
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        return new Q3State { SumLx = sumlx, SumL2 = suml2, Empty = LanePair.Less(amax, LanePair.Create(QuantMath.GroupMaxEps)) };
    }

    /// <summary>One element's trial level of the descent, kept where the scalar branch keeps it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Q3Step(ref Q3State s, LanePair xi, ref LanePair li, int nmax)
    {
        var zero = LanePair.Zero;
        var l = li;
        var w = xi * xi;
        var slx = s.SumLx - w * xi * l;
        var sl2 = s.SumL2 - w * l * l;
        var newL = ClampedNearest(xi * sl2 / slx, -nmax, nmax - 1);
        var slxNew = slx + w * xi * newL;
        var sl2New = sl2 + w * newL * newL;
        var accept = LanePair.Greater(slx, zero) & (LanePair.Less(newL, l) | LanePair.Greater(newL, l))
            & LanePair.Greater(sl2New, zero) & LanePair.Greater(slxNew * slxNew * s.SumL2, s.SumLx * s.SumLx * sl2New);
        li = LanePair.Select(accept, newL, l);
        s.SumLx = LanePair.Select(accept, slxNew, s.SumLx);
        s.SumL2 = LanePair.Select(accept, sl2New, s.SumL2);
        s.Changed |= accept;
    }

    /// <summary>The stored levels (l + nmax, 0 in empty lanes) and the scale sumlx/suml2 (0 where suml2 is not positive).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair Q3Finish(int nmax, Q3State s, ref LanePair Lr, int n)
    {
        var zero = LanePair.Zero;
        var offset = LanePair.Create(nmax);
        for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = LanePair.Select(s.Empty, zero, Unsafe.Add(ref Lr, i) + offset);
        return LanePair.Select(s.Empty, zero, LanePair.Select(LanePair.Greater(s.SumL2, zero), s.SumLx / s.SumL2, zero));
    }

    /// <summary><see cref="QuantMath.MakeQpQuants"/> on 32 groups of n = x.Length values weighted by <paramref name="weights"/>:
    /// the rounding at nmax/max, a ±0.4 search of the inverse scale, then up to five coordinate-descent passes (run until
    /// no lane changes, as in <see cref="MakeQ3Quants"/>). <paramref name="L"/> receives the levels as floats, each the low
    /// byte of its integer level as the scalar byte array holds it (and computes with).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // a hot kernel: no slow first tier
    public static LanePair MakeQpQuants(int nmax, ReadOnlySpan<LanePair> x, ReadOnlySpan<LanePair> weights, Span<LanePair> L)
    {
        int n = x.Length;
        ref var X = ref MemoryMarshal.GetReference(x);
        ref var W = ref MemoryMarshal.GetReference(weights[..n]);
        ref var Lr = ref MemoryMarshal.GetReference(L[..n]);
        var zero = LanePair.Zero;

        var max = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            max = LanePair.Select(LanePair.Greater(max, xi), max, xi);
        }
        var empty = LanePair.Less(max, LanePair.Create(QuantMath.GroupMaxEps));
        var iscale = LanePair.Create(nmax) / max;
        var scale = LanePair.Create(1) / iscale;
        var bestMse = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var diff = xi - scale * LowByte(NearestLevel(iscale * xi, int.MaxValue));
            bestMse += Unsafe.Add(ref W, i) * diff * diff;
        }
        for (int step = -4; step <= 4; ++step)
        {
            if (step == 0) continue;
            var iscaleIs = LanePair.Create(0.1f * step + nmax) / max;
            var scaleIs = LanePair.Create(1) / iscaleIs;
            var mse = zero;
            for (int i = 0; i < n; ++i)
            {
                var xi = Unsafe.Add(ref X, i);
                var diff = xi - scaleIs * NearestLevel(iscaleIs * xi, nmax);
                mse += Unsafe.Add(ref W, i) * diff * diff;
            }
            var better = LanePair.Less(mse, bestMse);
            bestMse = LanePair.Select(better, mse, bestMse);
            iscale = LanePair.Select(better, iscaleIs, iscale);
        }
        LanePair sumlx = zero, suml2 = zero;
        for (int i = 0; i < n; ++i)
        {
            var xi = Unsafe.Add(ref X, i);
            var w = Unsafe.Add(ref W, i);
            var l = NearestLevel(iscale * xi, nmax);
            Unsafe.Add(ref Lr, i) = LowByte(l);
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry)
        {
            var changed = zero;
            for (int i = 0; i < n; ++i)
            {
                var xi = Unsafe.Add(ref X, i);
                var w = Unsafe.Add(ref W, i);
                var li = Unsafe.Add(ref Lr, i);
                var slx = sumlx - w * xi * li;
                var sl2 = suml2 - w * li * li;
                var newL = NearestLevel(xi * sl2 / slx, nmax);
                var slxNew = slx + w * xi * newL;
                var sl2New = sl2 + w * newL * newL;
                var accept = LanePair.Greater(slx, zero) & LanePair.Greater(sl2, zero) & (LanePair.Less(newL, li) | LanePair.Greater(newL, li))
                    & LanePair.Greater(slxNew * slxNew * suml2, sumlx * sumlx * sl2New);
                Unsafe.Add(ref Lr, i) = LanePair.Select(accept, LowByte(newL), li);
                sumlx = LanePair.Select(accept, slxNew, sumlx);
                suml2 = LanePair.Select(accept, sl2New, suml2);
                changed |= accept;
            }
            if (!LanePair.Any(changed)) break;
        }
        for (int i = 0; i < n; ++i) Unsafe.Add(ref Lr, i) = LanePair.Select(empty, zero, Unsafe.Add(ref Lr, i));
        return LanePair.Select(empty, zero, LanePair.Select(LanePair.Greater(suml2, zero), sumlx / suml2, zero));
    }

    /// <summary>min(nearest_int(v), hi) as floats, exact for any input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair NearestLevel(LanePair v, int hi)
    {
        Vector512<float> One(Vector512<float> x) => Vector512.ConvertToSingle(Vector512.Min(NearestInt(x), Vector512.Create(hi)));
        return new(One(v.A), One(v.B));
    }

    /// <summary>The low byte of integer-valued lanes (what a C cast to uint8_t keeps), as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static LanePair LowByte(LanePair l)
    {
        Vector512<float> One(Vector512<float> x) => Vector512.ConvertToSingle(Vector512.ConvertToInt32(x) & Vector512.Create(0xFF));
        return new(One(l.A), One(l.B));
    }
}
