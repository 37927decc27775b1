using System.Buffers.Binary;
using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>Worked blocks (checked by hand), block geometry, and the vectorized paths against their scalar formulas.</summary>
public class GgmlBlockTests
{
    [Theory]
    [InlineData(GgmlType.Q4_0, 32, 18), InlineData(GgmlType.Q4_1, 32, 20), InlineData(GgmlType.Q5_0, 32, 22)]
    [InlineData(GgmlType.Q5_1, 32, 24), InlineData(GgmlType.Q8_0, 32, 34), InlineData(GgmlType.Q2_K, 256, 84)]
    [InlineData(GgmlType.Q3_K, 256, 110), InlineData(GgmlType.Q4_K, 256, 144), InlineData(GgmlType.Q5_K, 256, 176)]
    [InlineData(GgmlType.Q6_K, 256, 210), InlineData(GgmlType.BF16, 1, 2), InlineData(GgmlType.F16, 1, 2)]
    public void BlockGeometryIsGgmls(GgmlType type, int block, int bytes)
    {
        Assert.Equal(block, GgmlTypes.BlockSize(type));
        Assert.Equal(bytes, GgmlTypes.TypeSize(type));
    }

    [Fact]
    public void Q8_0WorkedBlock()
    {
        // x = 0, 1, …, 31 scaled by 1/8: amax = 31/8, d = 31/8/127 = 0.030511811 → f16 0x27D0 (0.0305175781),
        // id = 1/d = 32.774193; x_j·id = j·4.0967742: j=1 → 4.097 → 4, j=2 → 8.19 → 8, j=31 → 127.0 → 127.
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j / 8f;
        var y = new byte[34];
        GgmlQuants.QuantizeRows(GgmlType.Q8_0, x, y, 32);
        Assert.Equal(0x27D0, BinaryPrimitives.ReadUInt16LittleEndian(y));
        Assert.Equal(new byte[] { 0, 4, 8, 12, 16, 20, 25, 29 }, y[2..10]);
        Assert.Equal(127, y[33]);
    }

    [Fact]
    public void Q8_0RoundsHalfwayAwayFromZero()
    {
        // amax 127 makes d = 1 and id = 1 exactly, so x = ±2.5 sits on a tie: roundf gives ±3 (ties-to-even would give ±2).
        var x = new float[32];
        x[0] = 127; x[1] = 2.5f; x[2] = -2.5f; x[3] = 0.5f;
        var y = new byte[34];
        GgmlQuants.QuantizeRows(GgmlType.Q8_0, x, y, 32);
        Assert.Equal(3, (sbyte)y[3]);
        Assert.Equal(-3, (sbyte)y[4]);
        Assert.Equal(1, (sbyte)y[5]);
    }

    [Fact]
    public void Q4_0WorkedBlock()
    {
        // Largest magnitude is -8 (signed), so d = -8/-8 = 1 and q = trunc(x + 8.5): -8 → 0, 0 → 8, 7 → 15, 7.4 → 15 (capped).
        var x = new float[32];
        x[0] = -8; x[1] = 7; x[2] = 7.4f; x[16] = 3; x[17] = -0.6f;
        var y = new byte[18];
        GgmlQuants.QuantizeRows(GgmlType.Q4_0, x, y, 32);
        Assert.Equal(0x3C00, BinaryPrimitives.ReadUInt16LittleEndian(y)); // f16 1.0
        Assert.Equal((byte)(0 | (11 << 4)), y[2]);  // x0 → 0, x16 = 3 → 11
        Assert.Equal((byte)(15 | (7 << 4)), y[3]);  // x1 → 15, x17 = -0.6 → trunc(7.9) = 7
        Assert.Equal((byte)(15 | (8 << 4)), y[4]);  // x2 capped at 15, x18 = 0 → 8
        var back = new float[32];
        GgmlQuants.DequantizeRows(GgmlType.Q4_0, y, back, 32);
        Assert.Equal(-8f, back[0]);
        Assert.Equal(-1f, back[17]);
    }

    [Fact]
    public void NearestIntRoundsTiesToEven()
    {
        Assert.Equal(2, QuantMath.NearestInt(2.5f));
        Assert.Equal(4, QuantMath.NearestInt(3.5f));
        Assert.Equal(-2, QuantMath.NearestInt(-2.5f));
        Assert.Equal(0, QuantMath.NearestInt(0.49999997f));
    }

    [Fact]
    public void AllZeroSuperBlocksQuantizeToZeros()
    {
        foreach (var type in new[] { GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K })
        {
            var y = new byte[GgmlTypes.TypeSize(type)];
            GgmlQuants.QuantizeRows(type, new float[256], y, 256);
            var back = new float[256];
            GgmlQuants.DequantizeRows(type, y, back, 256);
            Assert.All(back, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void Q8_0VectorDequantizeEqualsScalarFormula()
    {
        var rng = new Random(3);
        for (int blocks = 1; blocks <= 9; blocks++)
        {
            var y = new byte[34 * blocks];
            rng.NextBytes(y);
            for (int b = 0; b < blocks; b++) BinaryPrimitives.WriteUInt16LittleEndian(y.AsSpan(34 * b), QuantMath.ToHalf((float)rng.NextDouble()));
            var x = new float[32 * blocks];
            GgmlQuants.DequantizeRows(GgmlType.Q8_0, y, x, 32 * blocks);
            for (int i = 0; i < x.Length; i++)
            {
                float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(y.AsSpan(34 * (i / 32))));
                Assert.Equal((sbyte)y[34 * (i / 32) + 2 + i % 32] * d, x[i]);
            }
        }
    }

    [Fact]
    public void ParallelQuantizationEqualsSerial()
    {
        var rng = new Random(5);
        var x = new float[512 * 300];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var parallel = new byte[GgmlTypes.RowSize(GgmlType.Q4_K, 512) * 300];
        GgmlQuants.QuantizeRows(GgmlType.Q4_K, x, parallel, 512);
        var rowBytes = (int)GgmlTypes.RowSize(GgmlType.Q4_K, 512);
        var one = new byte[rowBytes];
        for (int r = 0; r < 300; r += 37)
        {
            GgmlQuants.QuantizeRows(GgmlType.Q4_K, x.AsSpan(r * 512, 512), one, 512);
            Assert.True(one.AsSpan().SequenceEqual(parallel.AsSpan(r * rowBytes, rowBytes)), $"row {r}");
        }
    }
}
