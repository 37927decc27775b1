using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Evaluation;

namespace Llmq.Tests.Evaluation;

public class QuantizedEvaluationTests
{
    [Fact]
    public void GptqFormatEvaluatesToTheSameLogitsAsCompressedTensors()
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], RandomModelSpec.Llama(hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 96), seed: 3);
        var rng = new Random(1);
        var calibration = TextSource.FromIds("random tokens", Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 32).Select(_ => rng.Next(96)).ToArray()).ToList());
        var recipe = Recipe.FromScheme("W4A16_ASYM", QuantizationMethod.Gptq);
        recipe = recipe with { Groups = [recipe.Groups[0] with { Weights = recipe.Groups[0].Weights! with { GroupSize = 32 } }] };
        foreach (var (name, format) in new[] { ("ct", OutputFormat.CompressedTensors), ("gptq", OutputFormat.Gptq) })
            Oneshot.Run(new OneshotOptions { Model = dir["model"], Output = dir[name], Recipe = recipe, Format = format, Calibration = calibration, Samples = 4, SeqLen = 32 },
                cancellation: TestContext.Current.CancellationToken);

        int[] tokens = [1, 5, 9, 40, 77, 3, 12];
        using var ct = EvaluationModel.Open(dir["ct"]);
        using var gptq = EvaluationModel.Open(dir["gptq"]);
        using var dense = EvaluationModel.Open(dir["model"]);
        Assert.Equal("gptq", gptq.Format);
        var expected = ct.Model.Forward(tokens);
        Assert.Equal(expected, gptq.Model.Forward(tokens));
        Assert.NotEqual(expected, dense.Model.Forward(tokens));   // the quantization is really there
    }
}
