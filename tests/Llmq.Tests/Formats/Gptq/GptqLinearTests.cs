using Llmq.Checkpoints;
using Llmq.Formats.Gptq;
using Llmq.Quantization;

namespace Llmq.Tests.Formats.Gptq;

public class GptqLinearTests
{
    static QParams Params(int rows, int cols, int bits, bool symmetric, int groupSize, Func<int, float> scale, Func<int, float>? zero = null)
    {
        var args = new QuantizationArgs { NumBits = bits, Symmetric = symmetric, GroupSize = groupSize }.Validated();
        var qp = new QParams(args, rows, cols);
        for (var s = 0; s < qp.SlotCount; s++)
        {
            qp.Scale[s] = scale(s);
            if (qp.ZeroPoint is not null) qp.ZeroPoint[s] = zero!(s);
        }
        return qp;
    }

    [Fact]
    public void SymmetricInt4WorkedExample()
    {
        // out 8 × in 8, one group: row o holds q = o − 4 + (i % 2) (within −4 … 4)
        var codes = new byte[64];
        for (var o = 0; o < 8; o++)
            for (var i = 0; i < 8; i++) codes[o * 8 + i] = (byte)(sbyte)(o - 4 + i % 2);
        var packed = GptqLinear.Pack(codes, Params(8, 8, 4, true, 8, s => 0.5f), 4);
        Assert.Equal(8, packed.QWeight.Length);
        // column o: u = q + 8 alternates (o + 4, o + 5), first input in the lowest nibble
        for (var o = 0; o < 8; o++)
        {
            uint expected = 0;
            for (var i = 0; i < 8; i++) expected |= (uint)(o + 4 + i % 2) << (4 * i);
            Assert.Equal(expected, (uint)packed.QWeight[o]);
        }
        Assert.Equal([0x77777777], packed.QZeros); // v1: zero 8 stored as 7
        Assert.Equal(new int[8], packed.GIdx);
        var w = new float[64];
        GptqLinear.Dequantize(packed, w);
        for (var k = 0; k < 64; k++) Assert.Equal((sbyte)codes[k] * 0.5f, w[k]);
    }

    [Fact]
    public void ThreeBitWeightsFormAutoGptqsWordPattern()
    {
        // AutoGPTQ packs 32 three-bit inputs into 3 words: inputs 0–9 at bits 0–29, input 10 split (2 bits | 1 bit),
        // inputs 11–20 from bit 1, input 21 split (1 bit | 2 bits), inputs 22–31 from bit 2.
        const int cols = 32;
        var codes = new byte[32 * cols]; // out 32 (3·32/32 zero words)
        var u = new int[cols];
        for (var i = 0; i < cols; i++) { u[i] = (i * 5 + 3) % 8; codes[i] = (byte)(sbyte)(u[i] - 4); }
        var packed = GptqLinear.Pack(codes, Params(32, cols, 3, true, 32, s => 1f), 3);
        uint w0 = 0, w1 = 0, w2 = 0;
        for (var i = 0; i < 10; i++) w0 |= (uint)u[i] << (3 * i);
        w0 |= (uint)u[10] << 30; w1 |= (uint)u[10] >> 2;
        for (var i = 11; i < 21; i++) w1 |= (uint)u[i] << (3 * (i - 11) + 1);
        w1 |= (uint)u[21] << 31; w2 |= ((uint)u[21] >> 1) & 3;
        for (var i = 22; i < 32; i++) w2 |= (uint)u[i] << (3 * (i - 22) + 2);
        // qweight is [3, out]: output 0 is column 0
        Assert.Equal([w0, w1, w2], new[] { (uint)packed.QWeight[0], (uint)packed.QWeight[32], (uint)packed.QWeight[64] });
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void AsymmetricRoundTripIncludingTheZeroPointThatWraps(int bits)
    {
        const int rows = 32, cols = 64, groupSize = 16;
        int qmin = -(1 << (bits - 1)), levels = 1 << bits;
        var rng = new Random(bits);
        var codes = new byte[rows * cols];
        for (var k = 0; k < codes.Length; k++) codes[k] = (byte)(sbyte)(qmin + rng.Next(levels));
        // slot 0's zero point is qmin, i.e. unsigned zero 0, stored as 2^b − 1 under v1
        var qp = Params(rows, cols, bits, false, groupSize, s => 0.01f * (1 + s % 7), s => s == 0 ? qmin : qmin + s % levels);
        var packed = GptqLinear.Pack(codes, qp, bits);
        Assert.Equal((1 << bits) - 1, packed.QZeros[0] & ((1 << bits) - 1));
        var w = new float[rows * cols];
        GptqLinear.Dequantize(packed, w);
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < cols; c++)
            {
                var slot = qp.Slot(r, c);
                Assert.Equal(((sbyte)codes[r * cols + c] - qp.ZeroPointOf(slot)) * qp.Scale[slot], w[r * cols + c]);
            }
    }

    [Fact]
    public void ShapesThatAreNotWholeWordsAreRefused()
    {
        Assert.NotNull(GptqLinear.Unsupported(64, 172, 4));
        Assert.Null(GptqLinear.Unsupported(64, 176, 4));
        var ex = Assert.Throws<LlmqException>(() => GptqLinear.Pack(new byte[64 * 172], Params(64, 172, 4, true, 4, _ => 1f), 4));
        Assert.Contains("172", ex.Message);
    }

    [Fact]
    public void CheckpointReaderDequantizesWeightsAndPassesOtherTensorsThrough()
    {
        using var dir = new TempDirectory();
        var codes = new byte[32 * 32];
        for (var k = 0; k < codes.Length; k++) codes[k] = (byte)(sbyte)(k % 16 - 8);
        var qp = Params(32, 32, 4, true, 16, s => 0.25f);
        using (var writer = new SafetensorsWriter(dir.Path))
        {
            GptqLinear.Write(writer, "model.layers.0.mlp.up_proj", GptqLinear.Pack(codes, qp, 4));
            writer.AddFloat32("model.norm.weight", [3], [1f, 2f, 3f]);
            writer.Finish();
        }
        File.WriteAllText(Path.Combine(dir.Path, GptqQuantizeConfig.FileName), new GptqQuantizeConfig(4, 16, false, true, 0.01, false).ToJson().ToJsonString());
        using var checkpoint = GptqCheckpoint.Open(dir.Path);
        Assert.True(checkpoint.Contains("model.layers.0.mlp.up_proj.weight"));
        Assert.Equal([32L, 32L], checkpoint.Shape("model.layers.0.mlp.up_proj.weight"));
        var w = new float[32 * 32];
        checkpoint.ReadFloat32("model.layers.0.mlp.up_proj.weight", w);
        for (var k = 0; k < w.Length; k++) Assert.Equal((k % 16 - 8) * 0.25f, w[k]);
        var norm = new float[3];
        checkpoint.ReadFloat32("model.norm.weight", norm);
        Assert.Equal([1f, 2f, 3f], norm);
    }
}
