using Llmq.Numerics;
using Llmq.Quantization;
using System.Text.Json;
using Llmq.Algorithms;

namespace Llmq.Tests.Algorithms;

/// <summary>GPTQ against round-to-nearest on ../shared/vectors/gptq/case_896x896_n4096 (W [896×896], calibration
/// inputs X [4096×896] with outlier and massive channels). Metric: relative layer-output error ‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖²,
/// computed as trace(D G Dᵀ) / trace(W G Wᵀ) with G = XᵀX and D = W − Ŵ.</summary>
public class GptqVectorsTests
{
    const int Rows = 896, Cols = 896;

    /// <summary>The GPTQ paper's smallest 4-bit gain (Table 3, OPT-125M on WikiText2: FP16 27.65, RTN 37.28, GPTQ 31.12):
    /// RTN adds 9.63 perplexity, GPTQ 3.47, a factor 2.8. We ask the same factor of the layer-output error.</summary>
    const double PaperMargin = 2.8;

    sealed class Case
    {
        public required float[] W;
        public required float[] Gram; // XᵀX
        public double OutputEnergy;  // ‖XWᵀ‖²
    }

    static readonly Lazy<Case> Data = new(Load);

    static Case Load()
    {
        var path = SharedData.Path("vectors/gptq/case_896x896_n4096.safetensors");
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength));
        float[] Read(string name)
        {
            var offsets = header.RootElement.GetProperty(name).GetProperty("data_offsets");
            var begin = 8 + headerLength + offsets[0].GetInt64();
            var end = 8 + headerLength + offsets[1].GetInt64();
            return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)begin, (int)(end - begin))).ToArray();
        }
        var x = Read("X");
        var gram = new float[Cols * Cols];
        Gemm.AddXtX(x, x.Length / Cols, Cols, gram);
        var w = Read("W");
        return new Case { W = w, Gram = gram, OutputEnergy = Quadratic(w, gram) };
    }

    static double RelativeOutputError(float[] w, float[] wHat, float[] gram)
    {
        var d = new float[Rows * Cols];
        for (var i = 0; i < d.Length; i++) d[i] = w[i] - wHat[i];
        return Quadratic(d, gram) / Data.Value.OutputEnergy;
    }

    // Σ_r m_r G m_rᵀ
    static double Quadratic(float[] m, float[] gram)
    {
        var mg = new float[Rows * Cols];
        Gemm.MatMul(m, gram, mg, Rows, Cols, Cols);
        double s = 0;
        for (var i = 0; i < mg.Length; i++) s += (double)mg[i] * m[i];
        return s;
    }

    static (double Error, GptqResult Result) Run(bool symmetric, ActOrder actOrder, bool roundToNearest, GroupQParams when = GroupQParams.AtGroupStart)
    {
        var data = Data.Value;
        var args = new QuantizationArgs { NumBits = 4, Symmetric = symmetric, GroupSize = 128 }.Validated();
        var w = (float[])data.W.Clone();
        var h = new float[Cols * Cols];
        if (roundToNearest)
            for (var j = 0; j < Cols; j++) h[j * Cols + j] = 1; // H = I: no error feedback, same observer
        else
            for (var i = 0; i < h.Length; i++) h[i] = data.Gram[i] * (2f / 4096);
        var result = Gptq.Quantize(w, Rows, Cols, h, new GptqOptions { ActOrder = actOrder, GroupQParams = when }, args);
        return (RelativeOutputError(data.W, w, data.Gram), result);
    }

    [Theory]
    [InlineData(true, ActOrder.None)]
    [InlineData(true, ActOrder.Static)]
    [InlineData(true, ActOrder.Group)]
    [InlineData(false, ActOrder.None)]
    [InlineData(false, ActOrder.Static)]
    [InlineData(false, ActOrder.Group)]
    public void GptqBeatsRoundToNearest(bool symmetric, ActOrder actOrder)
    {
        var (rtn, _) = Run(symmetric, ActOrder.None, roundToNearest: true);
        var (gptq, result) = Run(symmetric, actOrder, roundToNearest: false);
        var (gptqBefore, _) = Run(symmetric, actOrder, roundToNearest: false, GroupQParams.BeforeSweep);
        TestContext.Current.SendDiagnosticMessage($"sym={symmetric} actorder={actOrder}: RTN {rtn:E4}  GPTQ {gptq:E4} (qparams fixed before the sweep {gptqBefore:E4})  loss {result.Loss:E4}");
        Assert.False(result.FellBackToRoundToNearest);
        Assert.True(rtn / gptq >= PaperMargin, $"GPTQ {gptq} vs RTN {rtn}: ratio {rtn / gptq:F2} < {PaperMargin}");
        Assert.True(rtn / gptqBefore >= PaperMargin, $"GPTQ (qparams before the sweep) {gptqBefore} vs RTN {rtn}");
    }
}
