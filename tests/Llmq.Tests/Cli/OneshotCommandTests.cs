using Llmq.Checkpoints;
using Llmq.Formats.Gptq;

namespace Llmq.Tests.Cli;

/// <summary>`llmq oneshot` in-process on stories260K with the built-in calibration text (its real tokenizer).</summary>
public class OneshotCommandTests
{
    [Fact]
    public void GptqFormatWithTheBuiltInCalibrationText()
    {
        using var dir = new TempDirectory();
        var model = SharedData.Path("models/stories260K-hf");
        // through a recipe; W8A8 has channel-wise weights, which suit the 172-wide FFN (no 128-column groups)
        File.WriteAllText(dir["recipe.yaml"], """
            quant_stage:
              quant_modifiers:
                GPTQModifier:
                  targets: [Linear]
                  ignore: [lm_head]
                  scheme: W8A8
                  dampening_frac: 0.02
            """);
        var (exit, output, error) = InspectCommandTests.Llmq("oneshot", "--model", model, "--recipe", dir["recipe.yaml"], "--samples", "4", "--seq-len", "64",
            "--output", dir["out"]);
        Assert.True(exit == 0, error);
        Assert.Contains("layer 5/5", output);
        Assert.Contains("35 Linears", output);
        Assert.Contains("dampening_frac: 0.02", File.ReadAllText(dir["out/recipe.yaml"]));
        using var ck = Checkpoint.Open(dir["out"]);
        Assert.True(ck.Contains("model.layers.4.mlp.down_proj.weight_scale"));
    }

    [Fact]
    public void UserErrorsAreOneLineAndExitTwo()
    {
        using var dir = new TempDirectory();
        var model = SharedData.Path("models/stories260K-hf");
        foreach (var args in new[]
        {
            new[] { "oneshot", "--model", model, "--scheme", "W4A16", "--format", "gptq", "--output", dir["out"] },
            ["oneshot", "--model", model, "--scheme", "FP8_DYNAMIC", "--method", "rtn", "--dataset", dir["text.txt"], "--output", dir["out"]],
        })
        {
            var (exit, _, error) = InspectCommandTests.Llmq(args);
            Assert.Equal(2, exit);
            Assert.Single(error.Trim().Split('\n'));
            Assert.False(Directory.Exists(dir["out"]));
        }
    }
}
