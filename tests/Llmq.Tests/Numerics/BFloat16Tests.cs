using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class BFloat16Tests
{
    [Fact]
    public void WideningIsExactForEveryBitPattern()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var bulk = new float[all.Length];
        BFloat16.ToFloat32(all, bulk);
        for (int i = 0; i < all.Length; i++)
        {
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(BFloat16.ToFloat(all[i])));
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(bulk[i]));
        }
    }

    [Fact]
    public void NarrowingRoundsToNearestEven()
    {
        Assert.Equal(0x3F80, BFloat16.FromFloat(1f));
        Assert.Equal(0x3F80, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie, even stays
        Assert.Equal(0x3F82, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie, odd rounds up
        Assert.Equal(0x3F81, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F808001))); // above the tie
        Assert.Equal(0x3F80, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F807FFF))); // below the tie
        Assert.Equal(BFloat16.PositiveInfinity, BFloat16.FromFloat(float.MaxValue)); // rounds past the largest bf16
        Assert.Equal(0x7F7F, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x7F7F7FFF)));
        Assert.Equal(BFloat16.NegativeInfinity, BFloat16.FromFloat(float.NegativeInfinity));
        Assert.Equal(0x8000, BFloat16.FromFloat(-0f));
        Assert.Equal(0x0002, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x00018000))); // subnormal tie: odd rounds up
    }

    [Fact]
    public void NaNStaysNaNWithItsSign()
    {
        foreach (uint bits in new uint[] { 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0x7FA50000 })
        {
            var b = BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(bits));
            Assert.True(float.IsNaN(BFloat16.ToFloat(b)), $"{bits:X8} -> {b:X4}");
            Assert.Equal(bits >> 31, (uint)b >> 15);
        }
    }

    [Fact]
    public void BulkNarrowingMatchesScalarReference()
    {
        var values = Probes();
        var bulk = new ushort[values.Length];
        BFloat16.FromFloat32(values, bulk);
        for (int i = 0; i < values.Length; i++)
            Assert.True(BFloat16.FromFloat(values[i]) == bulk[i], $"{BitConverter.SingleToUInt32Bits(values[i]):X8}");
    }

    /// <summary>Every bf16 value, the midpoints between neighbours and the floats either side of them, and random floats.</summary>
    static float[] Probes()
    {
        var list = new List<float>();
        for (uint b = 0; b < 65536; b++)
        {
            uint bits = b << 16;
            list.Add(BitConverter.UInt32BitsToSingle(bits));
            list.Add(BitConverter.UInt32BitsToSingle(bits | 0x8000));
            list.Add(BitConverter.UInt32BitsToSingle(bits | 0x7FFF));
            list.Add(BitConverter.UInt32BitsToSingle(bits | 0x8001));
        }
        var rng = new Random(1);
        for (int i = 0; i < 100_000; i++)
            list.Add(BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32)));
        return list.ToArray();
    }
}
