using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class Float8Tests
{
    // Nearest finite value by exhaustive search, ties to the even code (last mantissa bit 0): an independent RNE definition.
    static byte NearestByTable(float x, Func<byte, float> decode, Func<byte, bool> finite)
    {
        byte best = 0;
        double bestDist = double.MaxValue;
        for (int b = 0; b < 256; b++)
        {
            if (!finite((byte)b)) continue;
            double v = decode((byte)b);
            if ((b & 0x80) != 0 && v == 0) continue;   // −0 only for negative inputs, handled by sign below
            double d = Math.Abs(v - Math.Abs((double)x));
            if ((b & 0x80) != 0) continue;
            if (d < bestDist || (d == bestDist && (b & 1) == 0)) { best = (byte)b; bestDist = d; }
        }
        return (byte)(best | (x < 0 || (x == 0 && float.IsNegative(x)) ? 0x80 : 0));
    }

    [Fact]
    public void E4M3DecodesEveryPattern()
    {
        for (int b = 0; b < 256; b++)
        {
            float v = Float8E4M3.ToFloat((byte)b);
            Assert.Equal(Float8E4M3.Reference.ToFloat((byte)b), v);
            if ((b & 0x7F) == 0x7F) Assert.True(float.IsNaN(v));
            else Assert.False(float.IsNaN(v) || float.IsInfinity(v));
        }
        Assert.Equal(448f, Float8E4M3.ToFloat(0x7E));
        Assert.Equal(-448f, Float8E4M3.ToFloat(0xFE));
        Assert.Equal(MathF.Pow(2, -9), Float8E4M3.ToFloat(0x01));
        Assert.Equal(MathF.Pow(2, -6), Float8E4M3.ToFloat(0x08));
    }

    [Fact]
    public void E4M3RoundTripsEveryFinitePattern()
    {
        for (int b = 0; b < 256; b++)
            if ((b & 0x7F) != 0x7F)
                Assert.Equal((byte)b, Float8E4M3.FromFloat(Float8E4M3.ToFloat((byte)b)));
    }

    [Fact]
    public void E4M3RoundsToNearestEvenAtEveryMidpoint()
    {
        var values = Enumerable.Range(0, 0x7F).Select(b => Float8E4M3.ToFloat((byte)b)).ToArray();   // 0 … 448 ascending
        for (int i = 0; i + 1 < values.Length; i++)
        {
            float lo = values[i], hi = values[i + 1], mid = (lo + hi) / 2;
            foreach (var x in new[] { mid, MathF.BitDecrement(mid), MathF.BitIncrement(mid), lo + (hi - lo) / 4, -mid })
            {
                var expected = NearestByTable(x, Float8E4M3.ToFloat, b => (b & 0x7F) != 0x7F);
                Assert.Equal(expected, Float8E4M3.FromFloat(x));
            }
        }
    }

    [Fact]
    public void E4M3OverflowFollowsPyTorch()
    {
        Assert.Equal(0x7E, Float8E4M3.FromFloat(464f));               // tie between 448 and 480 goes to the even 448
        Assert.Equal(0x7F, Float8E4M3.FromFloat(MathF.BitIncrement(464f)));
        Assert.Equal(0x7F, Float8E4M3.FromFloat(480f));
        Assert.Equal(0x7F, Float8E4M3.FromFloat(float.PositiveInfinity));
        Assert.Equal(0xFF, Float8E4M3.FromFloat(float.NegativeInfinity));
        Assert.Equal(0x7F, Float8E4M3.FromFloat(float.NaN) & 0x7F);
        Assert.Equal(0x7E, Float8E4M3.FromFloatSaturating(1e9f));
        Assert.Equal(0xFE, Float8E4M3.FromFloatSaturating(float.NegativeInfinity));
        Assert.Equal(0x80, Float8E4M3.FromFloat(-0f));
        Assert.Equal(0x00, Float8E4M3.FromFloat(MathF.Pow(2, -10)));   // exactly half the smallest subnormal → even 0
        Assert.Equal(0x02, Float8E4M3.FromFloat(3 * MathF.Pow(2, -10)));
    }

    [Fact]
    public void E4M3BulkEqualsScalarAtEveryLength()
    {
        var rng = new Random(1);
        var specials = new[] { 0f, -0f, 448f, -448f, 464f, 465f, 480f, 1e30f, -1e30f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e-10f, -MathF.Pow(2, -10), 0.0017f };
        for (int n = 0; n <= 100; n++)
        {
            var src = new float[n];
            for (int i = 0; i < n; i++)
                src[i] = rng.Next(4) == 0 ? specials[rng.Next(specials.Length)] : (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-14, 12)));
            foreach (var saturate in new[] { false, true })
            {
                var dst = new byte[n];
                Float8E4M3.FromFloat32(src, dst, saturate);
                for (int i = 0; i < n; i++)
                    Assert.Equal(saturate ? Float8E4M3.FromFloatSaturating(src[i]) : Float8E4M3.FromFloat(src[i]), dst[i]);
            }
            var scaled = new byte[n];
            var finite = src.Select(x => float.IsFinite(x) ? x : 1f).ToArray();
            Float8E4M3.FromFloat32Scaled(finite, 0.37f, scaled);
            for (int i = 0; i < n; i++)
                Assert.Equal(Float8E4M3.FromFloatSaturating(finite[i] / 0.37f), scaled[i]);
            var back = new float[n];
            Float8E4M3.ToFloat32(scaled, back);
            for (int i = 0; i < n; i++) Assert.Equal(Float8E4M3.ToFloat(scaled[i]), back[i]);
        }
    }

    [Fact]
    public void E5M2DecodesAndRoundTripsEveryPattern()
    {
        for (int b = 0; b < 256; b++)
        {
            float v = Float8E5M2.ToFloat((byte)b);
            int exp = (b >> 2) & 0x1F, man = b & 3;
            if (exp == 31 && man != 0) { Assert.True(float.IsNaN(v)); continue; }
            if (exp == 31) { Assert.True(float.IsInfinity(v)); }
            Assert.Equal((byte)b, Float8E5M2.FromFloat(v));
        }
        Assert.Equal(57344f, Float8E5M2.ToFloat(0x7B));
        Assert.Equal(0x7B, Float8E5M2.FromFloat(61439f));
        Assert.Equal(0x7C, Float8E5M2.FromFloat(61440f));            // tie past the max rounds to the even code = inf
        Assert.Equal(0x7C, Float8E5M2.FromFloat(1e9f));
        Assert.Equal(0x7B, Float8E5M2.FromFloatSaturating(1e9f));
        Assert.Equal(0x7F, Float8E5M2.FromFloat(float.NaN) & 0x7F);
    }

    [Fact]
    public void E5M2RoundsToNearestEvenAtEveryMidpoint()
    {
        var values = Enumerable.Range(0, 0x7C).Select(b => Float8E5M2.ToFloat((byte)b)).ToArray();
        for (int i = 0; i + 1 < values.Length; i++)
        {
            float lo = values[i], hi = values[i + 1], mid = (lo + hi) / 2;
            foreach (var x in new[] { mid, MathF.BitDecrement(mid), MathF.BitIncrement(mid), -mid })
                Assert.Equal(NearestByTable(x, Float8E5M2.ToFloat, b => (b & 0x7C) != 0x7C), Float8E5M2.FromFloat(x));
        }
    }
}
