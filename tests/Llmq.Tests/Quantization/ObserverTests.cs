using Llmq.Quantization;

namespace Llmq.Tests.Quantization;

public class ObserverTests
{
    static float[] Random(int n, int seed, float outlierEvery = 0)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (outlierEvery > 0 && i % (int)outlierEvery == 0 ? 6 : 1);
        return x;
    }

    [Theory]
    [InlineData("W4A16", 8, 256, 8, 2)]
    [InlineData("W8A8", 8, 256, 8, 1)]
    [InlineData("FP8", 8, 256, 1, 1)]
    [InlineData("FP8_BLOCK", 300, 260, 3, 3)]
    [InlineData("NVFP4", 8, 256, 8, 16)]
    [InlineData("MXFP4", 8, 256, 8, 8)]
    public void ScaleShapesFollowTheStrategy(string preset, int rows, int cols, int scaleRows, int scaleCols)
    {
        var args = SchemePresets.Get(preset).Weights!;
        var w = Random(rows * cols, 1);
        var qp = MinMaxObserver.Instance.Compute(w, rows, cols, args, ModelPrecision.BFloat16);
        Assert.Equal((scaleRows, scaleCols), (qp.ScaleRows, qp.ScaleCols));
        Assert.All(qp.Scale, s => Assert.True(s > 0));
    }

    [Fact]
    public void MinMaxCoversEachSlotsRange()
    {
        var args = new QuantizationArgs { NumBits = 4, GroupSize = 32, Symmetric = false }.Validated();
        var w = Random(4 * 64, 2);
        var qp = MinMaxObserver.Instance.Compute(w, 4, 64, args, ModelPrecision.Float32);
        var dq = new float[w.Length];
        FakeQuant.QuantizeDequantize(w, qp, args, dq);
        for (int i = 0; i < w.Length; i++)
        {
            int slot = qp.Slot(i / 64, i % 64);
            Assert.True(MathF.Abs(w[i] - dq[i]) <= qp.Scale[slot] / 2 * 1.0001f);
        }
    }

    [Fact]
    public void MseErrorIsNoWorseThanMinMaxAndShrinksOutlierRanges()
    {
        var args = new QuantizationArgs { NumBits = 4, GroupSize = 128, Observer = "mse" }.Validated();
        var w = Random(16 * 256, 3, outlierEvery: 97);
        var mm = MinMaxObserver.Instance.Compute(w, 16, 256, args, ModelPrecision.Float32);
        var mse = Observers.ForWeights(args).Compute(w, 16, 256, args, ModelPrecision.Float32);
        double Err(QParams qp)
        {
            var dq = new float[w.Length];
            FakeQuant.QuantizeDequantize(w, qp, args, dq);
            return w.Zip(dq).Sum(p => Math.Pow(Math.Abs(p.First - p.Second), 2.4));
        }
        Assert.True(Err(mse) < Err(mm));
        Assert.Contains(Enumerable.Range(0, mm.SlotCount), s => mse.Scale[s] < mm.Scale[s]);
        Assert.All(Enumerable.Range(0, mm.SlotCount), s => Assert.True(mse.Scale[s] <= mm.Scale[s]));
    }

    [Theory]
    [InlineData("W4A16_ASYM")]
    [InlineData("W8A8")]
    [InlineData("FP8")]
    [InlineData("NVFP4")]
    [InlineData("MXFP4")]
    public void VectorizedQuantizeEqualsTheScalarReference(string preset)
    {
        var args = SchemePresets.Get(preset).Weights!;
        for (int cols = 128; cols <= 384; cols += 128)
        {
            var w = Random(3 * cols, cols);
            w[5] = 0; w[6] = -0f;
            var qp = MinMaxObserver.Instance.Compute(w, 3, cols, args, ModelPrecision.BFloat16);
            var codes = new byte[w.Length];
            FakeQuant.Quantize(w, qp, args, codes);
            for (int i = 0; i < w.Length; i++)
            {
                int slot = qp.Slot(i / cols, i % cols);
                Assert.Equal(FakeQuant.Reference.Code(w[i], qp.EffectiveScale(slot), qp.ZeroPointOf(slot), args), codes[i]);
            }
        }
    }
}
