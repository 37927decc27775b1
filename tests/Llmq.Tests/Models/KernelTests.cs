using Llmq.Models;

namespace Llmq.Tests.Models;

public class KernelTests
{
    [Fact]
    public void LogSoftmaxIsNormalizedAndDoesNotOverflow()
    {
        float[] logits = [1000, 999, 990, -1000];
        var logp = new float[4];
        LogSoftmax.Apply(logits, logp);
        Assert.Equal(1.0, logp.Sum(x => Math.Exp(x)), 1e-6);
        Assert.Equal(-Math.Log(1 + Math.Exp(-1) + Math.Exp(-10)), logp[0], 1e-6);
        Assert.Equal(logp[1], LogSoftmax.LogProbability(logits, 1));
    }

    [Fact]
    public void SoftmaxOfLargeScoresIsStable()
    {
        float[] x = [1e4f, 1e4f, -1e4f];
        CausalAttention.Softmax(x);
        Assert.Equal([0.5f, 0.5f, 0f], x);
    }

    [Fact]
    public void RmsNormAndSwiGluRowsFollowTheirFormulas()
    {
        float[] x = [1, -2, 3, 0.5f, 4, -4];
        float[] w = [0.5f, 1, 2];
        var y = new float[6];
        RmsNorm.Rows(x, w, y, 2, 1e-5f);
        double rms0 = Math.Sqrt((1 + 4 + 9) / 3.0 + 1e-5);
        Assert.Equal(-2 / rms0, y[1], 1e-6);
        double rms1 = Math.Sqrt((0.25 + 16 + 16) / 3.0 + 1e-5);
        Assert.Equal(-4 / rms1 * 2, y[5], 1e-6);

        float[] gateUp = [1, -3, 2, 5]; // one row: gate [1, −3], up [2, 5]
        var act = new float[2];
        SwiGlu.Rows(gateUp, act, 1, 2);
        Assert.Equal(1 / (1 + Math.Exp(-1)) * 2, act[0], 1e-6);
        Assert.Equal(-3 / (1 + Math.Exp(3)) * 5, act[1], 1e-6);
    }
}
