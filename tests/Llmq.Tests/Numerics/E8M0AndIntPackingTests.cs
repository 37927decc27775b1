using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class E8M0Tests
{
    [Theory]   // spec §9.5
    [InlineData(2.5f, 126)]
    [InlineData(3.5f, 127)]
    [InlineData(3.40625f, 126)]
    [InlineData(6.0f, 127)]
    [InlineData(0.10009765625f, 121)]
    [InlineData(0f, 0)]
    public void Mxfp4ScaleBytesMatchSpec(float amax, int expected) => Assert.Equal((byte)expected, E8M0.ScaleExponent(amax, 2));

    [Fact]
    public void DecodesEveryByte()
    {
        for (int e = 0; e < 255; e++) Assert.Equal(Math.Pow(2, e - 127), E8M0.ToFloat((byte)e));
        Assert.True(float.IsNaN(E8M0.ToFloat(255)));
        Assert.Equal(121, E8M0.ScaleExponent(5f, 8));   // MXFP8: 4 → 127 + 2 − 8
    }
}

public class IntPackingTests
{
    [Fact]
    public void Int4MatchesSpecExamples()
    {
        sbyte[] q = [2, -4, 1, 6, -8, 0, 3, -2, 6, 0, 3, -5, 4, 1, -3, 0];   // §9.1
        var words = new int[2];
        IntPacking.Pack(q, 4, words);
        Assert.Equal(new[] { 1803610442, -2053358706 }, words);
        sbyte[] q2 = [-2, -8, -5, 3, 2, -6, -1, -7, 4, -7, -2, 7, 1, -4, -6, -6];   // §9.2
        IntPacking.Pack(q2, 4, words);
        Assert.Equal(new[] { 388674310, 575272476 }, words);
        var back = new sbyte[16];
        IntPacking.Unpack(words, 4, back);
        Assert.Equal(q2, back);
    }

    [Fact]
    public void ZeroPointsPackDownTheRows()
    {
        sbyte[] zp = [-6, 0, 3, -8, 7, -1, 2, -5];   // §9.2: rows 0…7 of one group
        var words = new int[1];
        IntPacking.PackColumns(zp, 8, 1, 4, words);
        Assert.Equal(981404546, words[0]);
        var two = new sbyte[] { -6, 1, 0, 1, 3, 1, -8, 1, 7, 1, -1, 1, 2, 1, -5, 1, 4, 4 };   // 9 rows × 2 groups
        var packed = new int[2 * 2];
        IntPacking.PackColumns(two, 9, 2, 4, packed);
        Assert.Equal(981404546, packed[0]);
        var back = new sbyte[18];
        IntPacking.UnpackColumns(packed, 9, 2, 4, back);
        Assert.Equal(two, back);
    }

    [Fact]
    public void RoundTripsEveryWidthOnOddLengths()
    {
        var rng = new Random(3);
        for (int bits = 1; bits <= 8; bits++)
        {
            foreach (int n in new[] { 1, 7, 31, 32, 33, 100 })
            {
                var q = Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(-(1 << (bits - 1)), 1 << (bits - 1))).ToArray();
                var words = new int[IntPacking.WordCount(n, bits)];
                IntPacking.Pack(q, bits, words);
                var back = new sbyte[n];
                IntPacking.Unpack(words, bits, back);
                Assert.Equal(q, back);
            }
        }
    }

    [Fact]
    public void ThreeBitValuesStraddleWords()
    {
        // 32 values of 3 bits fill exactly 3 words; element 10 occupies stream bits 30..32.
        var q = new sbyte[32];
        q[10] = 3;   // u = 7 = 0b111
        var words = new int[3];
        IntPacking.Pack(q, 3, words);
        uint baseline = 0;   // every other u is 4 = 0b100
        for (int j = 0; j < 32; j++)
        {
            long bit = j * 3L;
            if (j == 10 || bit >= 32) continue;
            baseline |= 4u << (int)bit;
        }
        Assert.Equal(baseline | (3u << 30), (uint)words[0]);
        Assert.Equal(1u, (uint)words[1] & 1u);   // the top bit of element 10 starts word 1
    }
}
