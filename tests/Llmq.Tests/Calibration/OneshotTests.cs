using System.Text.Json.Nodes;
using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Formats.Gptq;

namespace Llmq.Tests.Calibration;

public class OneshotTests
{
    static readonly RandomModelSpec Spec = RandomModelSpec.Llama(hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 96);

    static TextSource RandomTokens(int samples, int seqLen)
    {
        var rng = new Random(5);
        return TextSource.FromIds("random tokens", Enumerable.Range(0, samples).Select(_ => Enumerable.Range(0, seqLen).Select(_ => rng.Next(96)).ToArray()).ToList());
    }

    static OneshotResult Run(string model, string output, OutputFormat format, Recipe recipe) =>
        Oneshot.Run(new OneshotOptions
        {
            Model = model, Output = output, Recipe = recipe, Format = format, Calibration = RandomTokens(8, 32), Samples = 8, SeqLen = 32,
        }, cancellation: TestContext.Current.CancellationToken);

    [Theory]
    [InlineData("W4A16")]
    [InlineData("W4A16_ASYM")]
    public void GptqFormatDequantizesToTheCompressedTensorsWeights(string scheme)
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec, seed: 7);
        var recipe = Recipe.FromScheme(scheme, QuantizationMethod.Gptq, new GptqOptions { ActOrder = ActOrder.Group });
        recipe = recipe with { Groups = [recipe.Groups[0] with { Weights = recipe.Groups[0].Weights! with { GroupSize = 32 } }] };
        var ct = Run(dir["model"], dir["ct"], OutputFormat.CompressedTensors, recipe);
        Run(dir["model"], dir["gptq"], OutputFormat.Gptq, recipe);
        Assert.Equal(14, ct.QuantizedModules);
        Assert.True(ct.TotalLoss > 0);

        using var a = CompressedCheckpoint.Open(dir["ct"]);
        using var b = GptqCheckpoint.Open(dir["gptq"]);
        Assert.Equal(14, b.QuantizedModules.Count);
        foreach (var module in b.QuantizedModules)
        {
            var name = module + ".weight";
            Assert.Equal(a.Shape(name), b.Shape(name));
            var wa = new float[a.Shape(name).Aggregate(1L, (x, y) => x * y)];
            var wb = new float[wa.Length];
            a.ReadFloat32(name, wa);
            b.ReadFloat32(name, wb);
            Assert.Equal(wa, wb);
        }
        var config = JsonNode.Parse(File.ReadAllText(dir["gptq/config.json"]))!["quantization_config"]!;
        Assert.Equal("gptq", (string)config["quant_method"]!);
        Assert.True((bool)config["desc_act"]!);
        Assert.Contains("GPTQModifier", File.ReadAllText(dir["ct/recipe.yaml"]));
    }

    [Fact]
    public void ACancelledRunLeavesNoOutputBehind()
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec, seed: 7);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var layers = new List<int>();
        var progress = new SyncProgress(p => { layers.Add(p.Layer); cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => Oneshot.Run(new OneshotOptions
        {
            Model = dir["model"], Output = dir["out"], Recipe = Recipe.FromScheme("W8A8", QuantizationMethod.Gptq),
            Calibration = RandomTokens(4, 16), Samples = 4, SeqLen = 16,
        }, progress, cancel.Token));
        Assert.Equal([1], layers); // stopped after the first of two layers
        Assert.False(Directory.Exists(dir["out"]));
        Assert.Single(Directory.GetDirectories(dir.Path)); // no temporary sibling either
    }

    sealed class SyncProgress(Action<OneshotProgress> report) : IProgress<OneshotProgress>
    {
        public void Report(OneshotProgress value) => report(value);
    }
}
