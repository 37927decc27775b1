using System.Text.Json.Nodes;
using Llmq.Models;

namespace Llmq.Tests.Models;

/// <summary>The real stories260K TinyStories Llama against logits from a float64 Hugging Face forward.</summary>
public class StoriesReferenceTests
{
    static JsonObject Reference() =>
        JsonNode.Parse(File.ReadAllText(SharedData.Path("vectors/stories260K/reference_outputs.json")))!.AsObject();

    [Fact]
    public void LogitsMatchTheFloat64Reference()
    {
        var reference = Reference()["prompt0_logits"]!;
        var ids = reference["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var expected = reference["logits"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<double>()).ToArray()).ToArray();
        using var model = DecoderModel.Open(SharedData.Path("models/stories260K-hf"));

        var logits = model.Forward(ids);

        Assert.Equal(ids.Length * expected[0].Length, logits.Length);
        double worst = 0;
        for (int t = 0; t < ids.Length; t++)
            for (int v = 0; v < expected[t].Length; v++)
                worst = Math.Max(worst, Math.Abs(logits[t * model.VocabSize + v] - expected[t][v]));
        Assert.True(worst <= 1e-4, $"max abs logit difference {worst:G3}");
    }

    [Fact]
    public void GreedyContinuationFromBosIsReproduced()
    {
        var ids = Reference()["greedy_from_bos_100"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        using var model = DecoderModel.Open(SharedData.Path("models/stories260K-hf"));

        var logits = model.Forward(ids.AsSpan(0, ids.Length - 1));

        for (int t = 0; t + 1 < ids.Length; t++)
        {
            var row = logits.AsSpan(t * model.VocabSize, model.VocabSize);
            Assert.True(ids[t + 1] == System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row), $"position {t}");
        }
    }
}
