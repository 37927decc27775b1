using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class Float16Tests
{
    [Fact]
    public void WideningMatchesSystemHalfForEveryBitPattern()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var bulk = new float[all.Length];
        Float16.ToFloat32(all, bulk);
        for (int i = 0; i < all.Length; i++)
        {
            uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(all[i]));
            Assert.True(expected == BitConverter.SingleToUInt32Bits(Float16.ToFloat(all[i])), $"scalar {i:X4}");
            Assert.True(expected == BitConverter.SingleToUInt32Bits(bulk[i]), $"bulk {i:X4}");
        }
    }

    [Fact]
    public void NarrowingMatchesSystemHalf()
    {
        var values = Probes();
        var bulk = new ushort[values.Length];
        Float16.FromFloat32(values, bulk);
        for (int i = 0; i < values.Length; i++)
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)values[i]);
            Assert.True(expected == Float16.FromFloat(values[i]), $"scalar {BitConverter.SingleToUInt32Bits(values[i]):X8}");
            Assert.True(expected == bulk[i], $"bulk {BitConverter.SingleToUInt32Bits(values[i]):X8}");
        }
    }

    [Fact]
    public void WorkedValues()
    {
        Assert.Equal(0x3C00, Float16.FromFloat(1f));
        Assert.Equal(0x7BFF, Float16.FromFloat(65504f));
        Assert.Equal(0x7BFF, Float16.FromFloat(65519.99f));
        Assert.Equal(Float16.PositiveInfinity, Float16.FromFloat(65520f)); // the tie goes to the even neighbour, ∞
        Assert.Equal(0x0001, Float16.FromFloat(MathF.Pow(2, -24)));
        Assert.Equal(0x0000, Float16.FromFloat(MathF.Pow(2, -25))); // tie between 0 and the smallest subnormal: even
        Assert.Equal(0x0002, Float16.FromFloat(3 * MathF.Pow(2, -25))); // tie between 1 and 2 units: even
        Assert.Equal(0x0400, Float16.FromFloat(MathF.Pow(2, -14)));
        Assert.True(float.IsNaN(Float16.ToFloat(Float16.FromFloat(float.NaN))));
        Assert.Equal(0xFE00, Float16.FromFloat(BitConverter.UInt32BitsToSingle(0xFFC00000)));
    }

    /// <summary>Every binary16 value widened, the midpoints between neighbours and the floats either side, random floats.</summary>
    static float[] Probes()
    {
        var list = new List<float>();
        for (int b = 0; b < 65536; b++)
        {
            float v = (float)BitConverter.UInt16BitsToHalf((ushort)b);
            float next = (float)BitConverter.UInt16BitsToHalf((ushort)(b + 1));
            list.Add(v);
            if (float.IsFinite(v) && float.IsFinite(next) && (b & 0x7FFF) != 0x7BFF)
            {
                float mid = (float)(((double)v + next) / 2);
                list.Add(mid);
                list.Add(MathF.BitIncrement(mid));
                list.Add(MathF.BitDecrement(mid));
            }
        }
        list.AddRange([65519.996f, 65520f, 65536f, float.MaxValue, float.Epsilon, -float.Epsilon]);
        var rng = new Random(2);
        for (int i = 0; i < 100_000; i++)
            list.Add(BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32)));
        return list.ToArray();
    }
}
