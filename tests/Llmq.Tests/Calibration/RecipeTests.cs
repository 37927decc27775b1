using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Quantization;

namespace Llmq.Tests.Calibration;

public class RecipeTests
{
    [Fact]
    public void ConfigGroupsWithIntegerFieldsParse()
    {
        const string yaml = """
            quant_stage:
              quant_modifiers:
                GPTQModifier:
                  ignore: [lm_head]
                  dampening_frac: 0.02
                  config_groups:
                    group_0:
                      targets: [Linear]
                      weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}
            """;
        var recipe = Recipe.Parse(yaml, "test.yaml");
        Assert.Equal(QuantizationMethod.Gptq, recipe.Method);
        var weights = Assert.Single(recipe.Groups).Weights!;
        Assert.Equal(4, weights.NumBits);
        Assert.Equal(32, weights.GroupSize);
        Assert.False(weights.Symmetric);
        Assert.Equal(0.02, recipe.Gptq.DampeningFrac, 12);
    }

    [Fact]
    public void UnknownFieldIsNamed()
    {
        const string yaml = """
            quant_stage:
              quant_modifiers:
                GPTQModifier: {scheme: W4A16, targets: [Linear], bogus: 1}
            """;
        var e = Assert.Throws<LlmqException>(() => Recipe.Parse(yaml, "r.yaml"));
        Assert.Contains("bogus", e.Message);
    }
}
