using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class Float4E2M1Tests
{
    [Fact]
    public void DecodesEveryCode()
    {
        float[] expected = [0, 0.5f, 1, 1.5f, 2, 3, 4, 6];
        for (int c = 0; c < 16; c++)
            Assert.Equal((c & 8) != 0 ? -expected[c & 7] : expected[c & 7], Float4E2M1.ToFloat((byte)c));
        Assert.True(float.IsNegative(Float4E2M1.ToFloat(0x8)));
    }

    [Fact]
    public void EncodesEveryCodeAndRoundsTiesToEven()
    {
        for (int c = 0; c < 16; c++)
            if (c != 8) Assert.Equal((byte)c, Float4E2M1.FromFloat(Float4E2M1.ToFloat((byte)c)));
        // Ties: 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4; above 6 saturates.
        (float X, byte Code)[] cases = [(0.25f, 0), (0.2501f, 1), (0.75f, 2), (1.25f, 2), (1.2501f, 3), (1.75f, 4), (2.5f, 4), (2.5001f, 5),
            (3.5f, 6), (5f, 6), (5.0001f, 7), (100f, 7), (-0.1f, 8), (-5.5f, 15), (-0f, 0), (0f, 0)];
        foreach (var (x, code) in cases)
            Assert.Equal(code, Float4E2M1.FromFloat(x));
    }

    [Fact]
    public void BulkEqualsScalarAtEveryLength()
    {
        var rng = new Random(2);
        for (int n = 0; n <= 80; n++)
        {
            var src = Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * 16)).ToArray();
            if (n > 3) { src[0] = 2.5f * 0.7f; src[1] = -0f; src[2] = 3.5f * 0.7f; }
            var codes = new byte[n];
            Float4E2M1.FromFloat32(src, 0.7f, codes);
            for (int i = 0; i < n; i++) Assert.Equal(Float4E2M1.FromFloat(src[i] / 0.7f), codes[i]);
        }
    }

    [Fact]
    public void PacksEvenElementLow()
    {
        byte[] codes = [0x7, 0xF, 0x4, 0xA];
        var packed = new byte[2];
        Float4E2M1.PackPairs(codes, packed);
        Assert.Equal(new byte[] { 0xF7, 0xA4 }, packed);
        var back = new byte[4];
        Float4E2M1.UnpackPairs(packed, back);
        Assert.Equal(codes, back);
    }
}
