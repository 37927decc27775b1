using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>The lane-parallel legacy and Q2_K/Q3_K quantizers against their scalar references, whole rows byte for byte,
/// with and without importance weights, on rows whose blocks (or sub-blocks) are each one of
/// <see cref="QuantMathLanesTests.Groups"/>' corner cases, and whose block count leaves the last pass partly empty.</summary>
public class BlockLanesTests
{
    /// <summary>A row of passes + a part of one more: each pass is 32 groups of <paramref name="group"/> values.</summary>
    static float[] Row(int group, int seed, int extraGroups) =>
        [.. QuantMathLanesTests.Groups(group, seed), .. QuantMathLanesTests.Groups(group, seed + 5).AsSpan(0, extraGroups * group)];

    public static TheoryData<GgmlType, bool> Types()
    {
        var data = new TheoryData<GgmlType, bool>();
        foreach (var t in new[] { GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1 })
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
            // 32 + 13 blocks of 32: one full pass, then a partial one
            var x = Row(32, seed, extraGroups: 13);
            var qw = importance ? QuantMathLanesTests.Weights(x, seed, importance: true) : [];
            int bytes = (int)GgmlTypes.RowSize(type, x.Length);
            var fast = new byte[bytes];
            var reference = new byte[bytes];
            GgmlQuants.QuantizeRows(type, x, fast, x.Length, qw);
            Reference(type, x, reference, qw);
            int first = fast.AsSpan().CommonPrefixLength(reference);
            Assert.True(first == bytes, $"seed {seed}: first difference at byte {first} (block {first / (bytes / (x.Length / 32))})");
        }
    }

    static void Reference(GgmlType type, float[] x, byte[] y, float[] qw)
    {
        switch (type)
        {
            case GgmlType.Q4_0: BlockQ4.QuantizeRowQ4_0Reference(x, y, qw); break;
            case GgmlType.Q4_1: BlockQ4.QuantizeRowQ4_1Reference(x, y, qw); break;
            case GgmlType.Q5_0: BlockQ5.QuantizeRowQ5_0Reference(x, y, qw); break;
            case GgmlType.Q5_1: BlockQ5.QuantizeRowQ5_1Reference(x, y, qw); break;
            default: throw new ArgumentException(type.ToString());
        }
    }
}
