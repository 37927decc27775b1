using Llmq.Formats.CompressedTensors;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Tests.Quantization;

/// <summary>The worked examples of spec §9, reproduced bit for bit through the public quantization API.</summary>
public class SpecExampleTests
{
    static QuantizationArgs IntGroup16(bool symmetric) =>
        new QuantizationArgs { NumBits = 4, Symmetric = symmetric, GroupSize = 16 }.Validated();

    static sbyte[] Codes(float[] x, QParams qp, QuantizationArgs args)
    {
        var codes = new byte[x.Length];
        FakeQuant.Quantize(x, qp, args, codes);
        return codes.Select(c => (sbyte)c).ToArray();
    }

    [Theory]
    [InlineData(ModelPrecision.Float32, 0x3EC44444u)]
    [InlineData(ModelPrecision.BFloat16, 0x3EC40000u)]
    public void Int4Symmetric(ModelPrecision precision, uint scaleBits)
    {
        float[] x = [0.8125f, -1.4375f, 0.3125f, 2.125f, -2.875f, 0.0f, 1.25f, -0.59375f, 2.40625f, -0.15625f, 0.96875f, -2.0f, 1.6875f, 0.4375f, -1.09375f, 0.0625f];
        var args = IntGroup16(true);
        var qp = MinMaxObserver.Instance.Compute(x, 1, 16, args, precision);
        Assert.Equal(scaleBits, BitConverter.SingleToUInt32Bits(qp.Scale[0]));
        Assert.Null(qp.ZeroPoint);
        var q = Codes(x, qp, args);
        Assert.Equal(new sbyte[] { 2, -4, 1, 6, -8, 0, 3, -2, 6, 0, 3, -5, 4, 1, -3, 0 }, q);
        var words = new int[2];
        IntPacking.Pack(q, 4, words);
        Assert.Equal(new byte[] { 0x4A, 0xE9, 0x80, 0x6B, 0x8E, 0x3B, 0x9C, 0x85 }, words.SelectMany(BitConverter.GetBytes).ToArray());
        if (precision == ModelPrecision.Float32)
        {
            var dq = new float[16];
            FakeQuant.QuantizeDequantize(x, qp, args, dq);
            float[] expected = [0.76667f, -1.53333f, 0.38333f, 2.30000f, -3.06667f, 0, 1.15000f, -0.76667f, 2.30000f, 0, 1.15000f, -1.91667f, 1.53333f, 0.38333f, -1.15000f, 0];
            for (int i = 0; i < 16; i++) Assert.Equal(expected[i], dq[i], 4);
        }
    }

    [Theory]
    [InlineData(ModelPrecision.Float32, 0x3E6AAAABu)]
    [InlineData(ModelPrecision.BFloat16, 0x3E6B0000u)]
    public void Int4Asymmetric(ModelPrecision precision, uint scaleBits)
    {
        float[] x = [0.8125f, -0.4375f, 0.3125f, 2.125f, 1.875f, 0.0f, 1.25f, -0.28125f, 2.34375f, -0.15625f, 0.96875f, 3.0f, 1.6875f, 0.4375f, -0.09375f, 0.0625f];
        var args = IntGroup16(false);
        var qp = MinMaxObserver.Instance.Compute(x, 1, 16, args, precision);
        Assert.Equal(scaleBits, BitConverter.SingleToUInt32Bits(qp.Scale[0]));
        Assert.Equal(-6f, qp.ZeroPoint![0]);
        var q = Codes(x, qp, args);
        Assert.Equal(new sbyte[] { -2, -8, -5, 3, 2, -6, -1, -7, 4, -7, -2, 7, 1, -4, -6, -6 }, q);
        var words = new int[2];
        IntPacking.Pack(q, 4, words);
        Assert.Equal(new byte[] { 0x06, 0xB3, 0x2A, 0x17, 0x1C, 0xF6, 0x49, 0x22 }, words.SelectMany(BitConverter.GetBytes).ToArray());
        var zpWord = new int[1];
        IntPacking.PackColumns([(sbyte)qp.ZeroPoint[0]], 1, 1, 4, zpWord);
        Assert.Equal(2, zpWord[0]);
        if (precision == ModelPrecision.Float32)
        {
            var dq = new float[16];
            FakeQuant.QuantizeDequantize(x, qp, args, dq);
            float[] expected = [0.91667f, -0.45833f, 0.22917f, 2.06250f, 1.83333f, 0, 1.14583f, -0.22917f, 2.29167f, -0.22917f, 0.91667f, 2.97917f, 1.60417f, 0.45833f, 0, 0];
            for (int i = 0; i < 16; i++) Assert.Equal(expected[i], dq[i], 4);
        }
    }

    [Theory]
    [InlineData(ModelPrecision.Float32)]
    [InlineData(ModelPrecision.BFloat16)]
    public void Nvfp4(ModelPrecision precision)
    {
        float[] x = [2.5f, -2.25f, 1.0f, -0.5f, 0.0f, 0.125f, -1.75f, 2.0f, -0.0625f, 0.375f, -1.25f, 1.625f, 0.8125f, -2.5f, 0.25f, -0.875f,
                     12.0f, -6.0f, 3.0f, -1.0f, 0.5f, 7.0f, -9.0f, 0.0f, 4.5f, -2.0f, 1.0f, 10.0f, -11.0f, 5.0f, -3.0f, 0.75f];
        var args = SchemePresets.Get("NVFP4").Weights!;
        var qp = MinMaxObserver.Instance.Compute(x, 1, 32, args, precision);
        Assert.Equal(0x43600000u, BitConverter.SingleToUInt32Bits(qp.GlobalScale!.Value));
        Assert.Equal(new byte[] { 0x6C, 0x7E }, qp.Scale.Select(Float8E4M3.FromFloat).ToArray());
        var codes = new byte[32];
        FakeQuant.Quantize(x, qp, args, codes);
        var packed = new byte[16];
        Float4E2M1.PackPairs(codes, packed);
        Assert.Equal(Convert.FromHexString("F7A4106E286DF4C1D793600EA4614F1B"), packed);
        var dq = new float[32];
        FakeQuant.QuantizeDequantize(x, qp, args, dq);
        float[] g1 = [12, -6, 3, -1, 0, 8, -8, 0, 4, -2, 1, 8, -12, 4, -3, 1];
        Assert.Equal(g1, dq[16..]);
        Assert.Equal(2.5714f, dq[0], 4);
        Assert.Equal(-0.4286f, dq[3], 4);
        Assert.Equal(0x43866666u, BitConverter.SingleToUInt32Bits(QParams.TensorGroupGlobalScale(10f)));   // activation example
    }

    [Fact]
    public void Fp8Channel()
    {
        float[] x = [3.5f, -0.10009765625f, 1.0f, -2.71875f, 0.001953125f, 0.30078125f];
        var args = SchemePresets.Get("FP8_DYNAMIC").Weights!;
        foreach (var precision in new[] { ModelPrecision.Float32, ModelPrecision.BFloat16 })
        {
            var qp = MinMaxObserver.Instance.Compute(x, 1, 6, args, precision);
            Assert.Equal(0.0078125f, qp.Scale[0]);
            var codes = new byte[6];
            FakeQuant.Quantize(x, qp, args, codes);
            Assert.Equal(new byte[] { 0x7E, 0xD5, 0x70, 0xFB, 0x28, 0x62 }, codes);
            Assert.Equal(new[] { 448f, -13, 128, -352, 0.25f, 40 }, codes.Select(Float8E4M3.ToFloat));
        }
    }

    [Fact]
    public void MxfpScales()
    {
        // One row of five groups of 32 whose amaxes are the §9.5 table; the third group shows the clamp to 6.
        float[] amax = [2.5f, 3.5f, 3.40625f, 6.0f, 0.10009765625f];
        byte[] expected = [126, 127, 126, 127, 121];
        var x = new float[5 * 32];
        for (int g = 0; g < 5; g++) { x[g * 32] = amax[g]; x[g * 32 + 1] = -amax[g] / 3; }
        var args = SchemePresets.Get("MXFP4").Weights!;
        var qp = MinMaxObserver.Instance.Compute(x, 1, 160, args, ModelPrecision.BFloat16);
        Assert.Equal(expected, qp.Scale.Select(s => (byte)(Math.ILogB(s) + 127)).ToArray());
        var codes = new byte[160];
        FakeQuant.Quantize(x, qp, args, codes);
        Assert.Equal(6f, Float4E2M1.ToFloat(codes[64]));   // 3.40625 / 0.5 = 6.8125 → clamped to 6
    }

    [Fact]
    public void InputScalesOfACalibratedRange()
    {
        // §9.3: calibration amax_x = 10 → input_global_scale = 268.8 (F32 0x43866666); FP8 (§2.3, §10.8): input_scale = amax / 448
        var range = new ActivationRange(-10f, 7.25f);
        var nvfp4 = new QuantizedLinear("m", SchemePresets.Get("NVFP4"), new QParams(SchemePresets.Get("NVFP4").Weights!, 1, 16), new byte[16]);
        foreach (var precision in new[] { ModelPrecision.Float32, ModelPrecision.BFloat16 })
            Assert.Equal(0x43866666u, BitConverter.SingleToUInt32Bits(nvfp4.WithInputs(range, precision).InputGlobalScale!.Value));
        var fp8 = new QuantizedLinear("m", SchemePresets.Get("FP8"), new QParams(SchemePresets.Get("FP8").Weights!, 1, 16), new byte[16]);
        Assert.Equal(10f / 448f, fp8.WithInputs(range, ModelPrecision.Float32).InputScale);
        Assert.Equal(0x3CB70000u, BitConverter.SingleToUInt32Bits(fp8.WithInputs(range, ModelPrecision.BFloat16).InputScale!.Value));   // bf16(0.0223214) = 0.0223389
        Assert.Null(fp8.WithInputs(range, ModelPrecision.Float32).InputZeroPoint);
        Assert.Throws<LlmqException>(() => fp8.WithInputs(null, ModelPrecision.Float32));
        var dynamic = new QuantizedLinear("m", SchemePresets.Get("FP8_DYNAMIC"), new QParams(SchemePresets.Get("FP8_DYNAMIC").Weights!, 1, 16), new byte[16]);
        Assert.Equal(dynamic, dynamic.WithInputs(null, ModelPrecision.Float32));   // dynamic inputs store nothing
    }
}
