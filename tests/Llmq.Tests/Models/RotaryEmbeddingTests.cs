using Llmq.Checkpoints;
using System.Text.Json.Nodes;
using Llmq.Models;

namespace Llmq.Tests.Models;

public class RotaryEmbeddingTests
{
    /// <summary>Llama 3.1 8B's rope_scaling.</summary>
    static JsonObject Llama3Scaling() => new()
    {
        ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
        ["original_max_position_embeddings"] = 8192,
    };

    [Fact]
    public void Llama3ScalingKeepsHighDividesLowAndBlendsBetween()
    {
        const double theta = 500000;
        var rope = new RotaryEmbedding(128, theta, Llama3Scaling());
        int blended = 0;
        for (int i = 0; i < 64; i++)
        {
            double f = Math.Pow(theta, -2.0 * i / 128), wavelength = 2 * Math.PI / f;
            double expected;
            if (wavelength < 8192 / 4.0) expected = f;                 // high frequencies: unchanged
            else if (wavelength > 8192 / 1.0) expected = f / 8;        // low frequencies: divided by the factor
            else
            {
                double smooth = (8192 / wavelength - 1) / (4 - 1);     // between: linear in context / wavelength
                expected = (1 - smooth) * f / 8 + smooth * f;
                blended++;
            }
            Assert.Equal(expected, rope.InverseFrequencies[i], expected * 1e-12);
        }
        Assert.InRange(blended, 1, 63);
        Assert.Equal(1.0, rope.InverseFrequencies[0]);
        Assert.Equal(Math.Pow(theta, -126.0 / 128) / 8, rope.InverseFrequencies[63], 1e-20);
    }

    [Fact]
    public void DefaultAndLinearScaling()
    {
        var plain = new RotaryEmbedding(8, 10000);
        Assert.Equal([1.0, 0.1, 0.01, 0.001], plain.InverseFrequencies.Select(f => Math.Round(f, 12)));
        var linear = new RotaryEmbedding(8, 10000, new JsonObject { ["type"] = "linear", ["factor"] = 4.0 });
        Assert.Equal(0.025, linear.InverseFrequencies[1], 1e-15);
    }

    [Fact]
    public void UnsupportedScalingIsRefused()
    {
        var error = Assert.Throws<LlmqException>(() => new RotaryEmbedding(8, 10000, new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 }));
        Assert.Contains("yarn", error.Message);
    }

    [Fact]
    public void RotatesHalvesByPositionTimesFrequency()
    {
        var rope = new RotaryEmbedding(4, 100);
        rope.EnsurePositions(8);
        float[] x = [1, 2, 3, 4];
        rope.Rotate(x, 7);
        double a0 = 7 * 1.0, a1 = 7 * 0.1; // f = 100^(−2i/4)
        Assert.Equal(1 * Math.Cos(a0) - 3 * Math.Sin(a0), x[0], 1e-6);
        Assert.Equal(2 * Math.Cos(a1) - 4 * Math.Sin(a1), x[1], 1e-6);
        Assert.Equal(3 * Math.Cos(a0) + 1 * Math.Sin(a0), x[2], 1e-6);
        Assert.Equal(4 * Math.Cos(a1) + 2 * Math.Sin(a1), x[3], 1e-6);
    }

    [Fact]
    public void HeadDimComesFromConfigOrHiddenOverHeads()
    {
        var spec = new TinySpec("LlamaForCausalLM", Hidden: 32, Heads: 4, HeadDim: 16);
        using var explicitHeadDim = new DecoderModel(TinyModels.Weights(spec, 1), TinyModels.Config(spec));
        Assert.Equal(16, explicitHeadDim.HeadDim);
        var json = spec.Json();
        json.Remove("head_dim");
        using var derived = new DecoderModel(new InMemoryTensors(), ModelConfig.Parse(json));
        Assert.Equal(8, derived.HeadDim);
    }
}
