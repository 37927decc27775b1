using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>The lane-parallel K-quant searches against the scalar ones they replace: every lane, and every whole row,
/// must be bit-identical, on groups built to reach the searches' corners (all-zero, sub-epsilon, constant, one-signed,
/// outliers, ties, signed zeros, subnormals, NaN and infinity).</summary>
public class QuantMathLanesTests
{
    /// <summary>32 groups of n values, each of a different kind, shuffled by the seed.</summary>
    internal static float[] Groups(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[QuantMathLanes.Lanes * n];
        for (int g = 0; g < QuantMathLanes.Lanes; g++)
        {
            var group = x.AsSpan(g * n, n);
            int kind = (g + seed) % 14;
            for (int i = 0; i < n; i++)
            {
                float gauss = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                group[i] = kind switch
                {
                    0 => 0f,
                    1 => gauss * 1e-17f,                             // below GROUP_MAX_EPS
                    2 => 0.25f,                                      // constant
                    3 => MathF.Abs(gauss) + 0.5f,                    // all positive: min clamps to 0
                    4 => -MathF.Abs(gauss) - 0.5f,                   // all negative
                    5 => i == 7 ? 40f : gauss * 0.01f,               // one outlier
                    6 => (i - n / 2) * 0.5f,                         // ramp: exact ties in the rounding
                    7 => i % 2 == 0 ? 0f : -0f,                      // signed zeros
                    8 => gauss * 1e-39f,                             // subnormals
                    9 => MathF.Round(gauss * 4) / 4,                 // coarse grid: many equal errors
                    10 => i == 3 ? float.NaN : gauss,                // NaN: the fast float rounding must not be used
                    11 => i == 5 ? float.PositiveInfinity : gauss,
                    _ => gauss * (float)Math.Pow(10, rng.Next(-3, 3)),
                };
            }
        }
        return x;
    }

    internal static float[] Weights(float[] x, int seed, bool importance)
    {
        var rng = new Random(seed);
        return x.Select(v => importance ? (rng.Next(8) == 0 ? 0f : (float)rng.NextDouble() * 3) : 0.3f + MathF.Abs(v)).ToArray();
    }

    static LanePair[] Lanes(float[] groups, int n)
    {
        var t = new LanePair[n];
        QuantMathLanes.Transpose(groups, n, t);
        return t;
    }

    static float Lane(LanePair[] v, int i, int lane) => v[i][lane];

    [Theory]
    [InlineData(15, -1f, 0.1f, 20, false, false)]    // Q4_K
    [InlineData(31, -0.5f, 0.1f, 15, false, false)]  // Q5_K
    [InlineData(15, -0.9f, 0.05f, 36, true, false)]  // Q4_K / Q5_K with importance
    [InlineData(31, -0.9f, 0.05f, 36, true, false)]
    [InlineData(3, -0.5f, 0.1f, 15, false, true)]    // Q2_K's mean-absolute-deviation form
    public void MakeQkxQuantsEqualsScalarInEveryLane(int nmax, float rmin, float rdelta, int nstep, bool guarded, bool useMad)
    {
        const int n = 32;
        for (int seed = 0; seed < 12; seed++)
        {
            var x = Groups(n, seed);
            var w = Weights(x, seed, importance: guarded);
            var L = new LanePair[n];
            var scale = QuantMathLanes.MakeQkxQuants(nmax, Lanes(x, n), Lanes(w, n), L, new LanePair[n], out var min,
                rmin, rdelta, nstep, useMad, guarded);
            for (int g = 0; g < QuantMathLanes.Lanes; g++)
            {
                var expectedL = new byte[n];
                var xs = x.AsSpan(g * n, n);
                var ws = w.AsSpan(g * n, n);
                float expectedMin;
                float expected = guarded
                    ? QuantMath.MakeQkx3Quants(n, nmax, xs, ws, expectedL, out expectedMin, new byte[n], rmin, rdelta, nstep, useMad)
                    : QuantMath.MakeQkx2Quants(n, nmax, xs, ws, expectedL, out expectedMin, new byte[n], rmin, rdelta, nstep, useMad);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(scale[g]),
                    $"seed {seed} lane {g}: scale {expected:R} vs {scale[g]:R}");
                Assert.True(BitConverter.SingleToInt32Bits(expectedMin) == BitConverter.SingleToInt32Bits(min[g]),
                    $"seed {seed} lane {g}: min {expectedMin:R} vs {min[g]:R}");
                for (int i = 0; i < n; i++)
                    Assert.True(expectedL[i] == Lane(L, i, g), $"seed {seed} lane {g} level {i}: {expectedL[i]} vs {Lane(L, i, g)}");
            }
        }
    }

    [Theory]
    [InlineData(false), InlineData(true)]
    public void MakeQxQuantsEqualsScalarInEveryLane(bool importance)
    {
        const int n = 16, nmax = 32;
        for (int seed = 0; seed < 12; seed++)
        {
            var x = Groups(n, seed);
            var w = importance ? Weights(x, seed, importance: true) : x.Select(v => v * v).ToArray();
            var L = new LanePair[n];
            var scale = QuantMathLanes.MakeQxQuants(nmax, Lanes(x, n), Lanes(w, n), L);
            for (int g = 0; g < QuantMathLanes.Lanes; g++)
            {
                var expectedL = new sbyte[n];
                float expected = QuantMath.MakeQxQuants(n, nmax, x.AsSpan(g * n, n), expectedL, 1, importance ? w.AsSpan(g * n, n) : default);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(scale[g]),
                    $"seed {seed} lane {g}: scale {expected:R} vs {scale[g]:R}");
                for (int i = 0; i < n; i++)
                    Assert.True(expectedL[i] == Lane(L, i, g), $"seed {seed} lane {g} level {i}: {expectedL[i]} vs {Lane(L, i, g)}");
            }
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, false), InlineData(GgmlType.Q4_K, true)]
    [InlineData(GgmlType.Q5_K, false), InlineData(GgmlType.Q5_K, true)]
    [InlineData(GgmlType.Q6_K, false), InlineData(GgmlType.Q6_K, true)]
    public void WholeRowsEqualTheScalarReference(GgmlType type, bool importance)
    {
        // 5 super-blocks: Q4_K/Q5_K take four per pass and Q6_K two, so the last pass runs partly empty
        const int cols = 5 * 256;
        for (int seed = 0; seed < 4; seed++)
        {
            var x = Groups(cols / QuantMathLanes.Lanes, seed);
            var qw = importance ? Weights(x, seed, importance: true) : [];
            int bytes = (int)GgmlTypes.RowSize(type, cols);
            var fast = new byte[bytes];
            var reference = new byte[bytes];
            GgmlQuants.QuantizeRows(type, x, fast, cols, qw);
            switch (type)
            {
                case GgmlType.Q4_K: BlockQ4K.QuantizeRowReference(x, reference, qw, 15, BlockQ4K.Q4KBytes); break;
                case GgmlType.Q5_K: BlockQ4K.QuantizeRowReference(x, reference, qw, 31, BlockQ4K.Q5KBytes); break;
                default: BlockQ6K.QuantizeRowReference(x, reference, qw); break;
            }
            int first = fast.AsSpan().CommonPrefixLength(reference);
            Assert.True(first == bytes, $"seed {seed}: first difference at byte {first}");
        }
    }

    [Fact]
    public void TransposePutsGroupsInLanesAndZerosTheRest()
    {
        var x = Enumerable.Range(0, 3 * 4).Select(i => (float)i).ToArray();
        var t = new LanePair[4];
        t[0] = LanePair.Create(9f);
        QuantMathLanes.Transpose(x, 4, t);
        Assert.Equal([0f, 4f, 8f, 0f], MemoryMarshal.Cast<LanePair, float>(t)[..4].ToArray());
        Assert.Equal(3f, t[3][0]);
        Assert.Equal(11f, t[3][2]);
        Assert.Equal(0f, t[3][15]);
        Assert.Equal(0f, t[3][31]);
    }

    [Theory]
    [InlineData(16), InlineData(32)]
    public void VectorTransposeEqualsScalarForEveryGroupCount(int n)
    {
        foreach (int groups in new[] { 1, 5, 15, 16, 17, 31, 32 })
        {
            var x = Enumerable.Range(0, groups * n).Select(i => i * 0.5f - 7f).ToArray();
            var fast = Enumerable.Repeat(LanePair.Create(9f), n).ToArray();
            var reference = Enumerable.Repeat(LanePair.Create(-9f), n).ToArray();
            QuantMathLanes.Transpose(x, n, fast);
            QuantMathLanes.TransposeReference(x, n, reference);
            Assert.Equal(MemoryMarshal.Cast<LanePair, float>(reference).ToArray(), MemoryMarshal.Cast<LanePair, float>(fast).ToArray());
        }
    }

    [Theory]
    [InlineData(15), InlineData(31), InlineData(63)]
    public void VectorPacksEqualScalar(int top)
    {
        var rng = new Random(top);
        for (int trial = 0; trial < 20; trial++)
        {
            // trial 0: every level at its top; then random levels
            var L = Enumerable.Range(0, 256).Select(_ => trial == 0 ? top : rng.Next(top + 1)).ToArray();
            int bytes = top == 63 ? BlockQ6K.BlockBytes : top == 15 ? BlockQ4K.Q4KBytes : BlockQ4K.Q5KBytes;
            var fast = new byte[bytes];
            var reference = new byte[bytes];
            if (top == 63)
            {
                BlockQ6K.Pack(fast, L);
                BlockQ6K.PackReference(reference, L);
            }
            else
            {
                BlockQ4K.Pack(fast, L, top);
                BlockQ4K.PackReference(reference, L, top);
            }
            Assert.Equal(reference, fast);
        }
    }
}
