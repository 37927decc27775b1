using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>The lane-parallel legacy and Q2_K…Q5_K quantizers against their scalar references, whole rows byte for byte,
/// with and without importance weights, on rows whose blocks (or sub-blocks) are each one of
/// <see cref="QuantMathLanesTests.Groups"/>' corner cases, and whose block count leaves the last pass partly empty.</summary>
public class BlockLanesTests
{
    /// <summary>A row of <paramref name="groups"/> groups of <paramref name="group"/> values, taken from successive sets
    /// of 32 corner-case groups.</summary>
    static float[] Row(int group, int seed, int groups)
    {
        var row = new List<float>();
        for (int k = 0; row.Count < groups * group; k++) row.AddRange(QuantMathLanesTests.Groups(group, seed + 5 * k));
        return row.GetRange(0, groups * group).ToArray();
    }

    public static TheoryData<GgmlType, bool> Types()
    {
        var data = new TheoryData<GgmlType, bool>();
        foreach (var t in new[] { GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K })
        {
            data.Add(t, false);
            data.Add(t, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void WholeRowsEqualTheScalarReference(GgmlType type, bool importance)
    {
        for (int seed = 0; seed < 14; seed++)
        {
            // legacy: 45 blocks, a full pass of 32 blocks and a partial one; K-quants: 35 super-blocks, a full chunk of
            // 32 super-blocks, then a chunk of 3: for Q2_K/Q3_K (16 sub-blocks of 16, two per pass) a full pass and a
            // half-empty one, for Q4_K/Q5_K (8 sub-blocks of 32, four per pass) one pass three quarters full
            bool legacy = GgmlTypes.BlockSize(type) == 32;
            int sub = type is GgmlType.Q4_K or GgmlType.Q5_K ? 32 : 16;
            var x = legacy ? Row(32, seed, groups: 45) : Row(sub, seed, groups: 35 * 256 / sub);
            var qw = importance ? QuantMathLanesTests.Weights(x, seed, importance: true) : [];
            int bytes = (int)GgmlTypes.RowSize(type, x.Length);
            var fast = new byte[bytes];
            var reference = new byte[bytes];
            GgmlQuants.QuantizeRows(type, x, fast, x.Length, qw);
            Reference(type, x, reference, qw);
            int first = fast.AsSpan().CommonPrefixLength(reference);
            Assert.True(first == bytes, $"seed {seed}: first difference at byte {first} (block {first / (bytes / (x.Length / GgmlTypes.BlockSize(type)))})");
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void ManyRowsEqualTheReferenceRowByRow(GgmlType type, bool importance)
    {
        // 11 rows: the legacy types take each row's mean square eight rows at a time, so the last group is partial
        int cols = 3 * GgmlTypes.BlockSize(type), rows = 11;
        var x = Row(16, seed: 3, groups: rows * cols / 16);
        var qw = importance ? QuantMathLanesTests.Weights(x[..cols], 3, importance: true) : [];
        int rowBytes = (int)GgmlTypes.RowSize(type, cols);
        var fast = new byte[rows * rowBytes];
        var reference = new byte[rows * rowBytes];
        GgmlQuants.QuantizeRowsSerial(type, x, fast, cols, qw);
        for (int r = 0; r < rows; r++) Reference(type, x[(r * cols)..((r + 1) * cols)], reference.AsSpan(r * rowBytes, rowBytes), qw);
        int first = fast.AsSpan().CommonPrefixLength(reference);
        Assert.True(first == fast.Length, $"first difference in row {first / rowBytes}");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void NoRowsWriteNothing(GgmlType type, bool importance) =>
        GgmlQuants.QuantizeRowsSerial(type, [], [], 256, importance ? new float[256] : default);

    static void Reference(GgmlType type, float[] x, Span<byte> y, float[] qw)
    {
        switch (type)
        {
            case GgmlType.Q4_0: BlockQ4.QuantizeRowQ4_0Reference(x, y, qw); break;
            case GgmlType.Q4_1: BlockQ4.QuantizeRowQ4_1Reference(x, y, qw); break;
            case GgmlType.Q5_0: BlockQ5.QuantizeRowQ5_0Reference(x, y, qw); break;
            case GgmlType.Q5_1: BlockQ5.QuantizeRowQ5_1Reference(x, y, qw); break;
            case GgmlType.Q2_K: BlockQ2K.QuantizeRowReference(x, y, qw); break;
            case GgmlType.Q3_K: BlockQ3K.QuantizeRowReference(x, y, qw); break;
            case GgmlType.Q4_K: BlockQ4K.QuantizeRowReference(x, y, qw, 15, BlockQ4K.Q4KBytes); break;
            case GgmlType.Q5_K: BlockQ4K.QuantizeRowReference(x, y, qw, 31, BlockQ4K.Q5KBytes); break;
            default: throw new ArgumentException(type.ToString());
        }
    }

    [Theory]
    [InlineData(1), InlineData(2)]
    public void MakeQ3QuantsEqualsScalarInEveryLane(int sets)
    {
        const int n = 16, nmax = 4;
        for (int seed = 0; seed < 14; seed++)
        {
            // set s: the corner-case groups of seed + 7s
            var x = Enumerable.Range(0, sets).Select(s => QuantMathLanesTests.Groups(n, seed + 7 * s)).ToArray();
            var xt = new LanePair[sets * n];
            for (int s = 0; s < sets; s++) QuantMathLanes.Transpose(x[s], n, xt.AsSpan(s * n, n));
            var L = new LanePair[sets * n];
            var scales = new LanePair[sets];
            if (sets == 1) scales[0] = QuantMathLanes.MakeQ3Quants(nmax, xt, L);
            else QuantMathLanes.MakeQ3Quants(nmax, xt, L, scales);
            for (int s = 0; s < sets; s++)
                for (int g = 0; g < QuantMathLanes.Lanes; g++)
                {
                    var expectedL = new sbyte[n];
                    float expected = QuantMath.MakeQ3Quants(n, nmax, x[s].AsSpan(g * n, n), expectedL, true);
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(scales[s][g]),
                        $"seed {seed} set {s} lane {g}: scale {expected:R} vs {scales[s][g]:R}");
                    for (int i = 0; i < n; i++)
                        Assert.True(expectedL[i] == L[s * n + i][g], $"seed {seed} set {s} lane {g} level {i}: {expectedL[i]} vs {L[s * n + i][g]}");
                }
        }
    }

    [Fact]
    public void VectorPacksEqualScalar()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 20; trial++)
        {
            // trial 0: every level at its top; then random levels
            var L = Enumerable.Range(0, 256).Select(_ => trial == 0 ? 7 : rng.Next(8)).ToArray();
            var fast = new byte[BlockQ3K.BlockBytes];
            var reference = new byte[BlockQ3K.BlockBytes];
            var fastL = L.ToArray();
            BlockQ3K.Pack(fast, fastL);
            BlockQ3K.PackReference(reference, L);
            Assert.Equal(reference, fast);
            Assert.Equal(L, fastL);
            var low = L.Select(l => l & 3).ToArray();
            BlockQ2K.Pack(fast.AsSpan(0, 64), low);
            BlockQ2K.PackReference(reference.AsSpan(0, 64), low);
            Assert.Equal(reference, fast);
        }
    }

    [Theory]
    [InlineData(16, 15, false), InlineData(16, 15, true)]   // Q2_K's super-block scales (absolute values) and mins
    [InlineData(8, 63, false), InlineData(8, 63, true)]
    public void MakeQpQuantsEqualsScalarInEveryLane(int n, int nmax, bool absolute)
    {
        for (int seed = 0; seed < 14; seed++)
        {
            // the corner-case groups, or their magnitudes (the sub-block scales this search sees are mostly non-negative)
            var x = QuantMathLanesTests.Groups(n, seed).Select(v => absolute ? MathF.Abs(v) : v).ToArray();
            var w = QuantMathLanesTests.Weights(x, seed, importance: true);
            var xt = new LanePair[n];
            var wt = new LanePair[n];
            QuantMathLanes.Transpose(x, n, xt);
            QuantMathLanes.Transpose(w, n, wt);
            var L = new LanePair[n];
            var scale = QuantMathLanes.MakeQpQuants(nmax, xt, wt, L);
            for (int g = 0; g < QuantMathLanes.Lanes; g++)
            {
                var expectedL = new byte[n];
                float expected = QuantMath.MakeQpQuants(n, nmax, x.AsSpan(g * n, n), expectedL, w.AsSpan(g * n, n));
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(scale[g]),
                    $"seed {seed} lane {g}: scale {expected:R} vs {scale[g]:R}");
                for (int i = 0; i < n; i++)
                    Assert.True(expectedL[i] == L[i][g], $"seed {seed} lane {g} level {i}: {expectedL[i]} vs {L[i][g]}");
            }
        }
    }
}
