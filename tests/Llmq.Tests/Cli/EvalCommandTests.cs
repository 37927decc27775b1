using System.Text.Json.Nodes;
using Llmq.Quantization;

namespace Llmq.Tests.Cli;

/// <summary>`llmq eval` in-process on the real 260K-parameter model.</summary>
public class EvalCommandTests
{
    [Fact]
    public void PerplexityAndKlOfStories260K()
    {
        var model = SharedData.Path("models/stories260K-hf");
        var (exit, output, _) = InspectCommandTests.Llmq("eval", "--model", model,
            "--dataset", SharedData.Path("data/tinystories/tinystories_sample_cs336.txt"),
            "--seq-len", "64", "--max-windows", "3", "--kl-base", model, "--json");
        Assert.Equal(0, exit);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(3, (int)json["windows"]!);
        Assert.Equal(3 * 63, (long)json["scored_tokens"]!);
        Assert.InRange((double)json["perplexity"]!, 2.0, 8.0);   // stories260K is at ~3.5–4 on TinyStories
        Assert.Equal(0.0, (double)json["mean_kl"]!, 6);          // a model against itself
        Assert.Equal("dense", (string)json["format"]!);
    }

    [Fact]
    public void CompressedTensorsCheckpointIsDequantizedOnLoad()
    {
        using var temp = new TempDirectory();
        var dense = SharedData.Path("models/stories260K-hf");
        var quantized = Path.Combine(temp.Path, "w8");
        Quantizer.QuantizeModel(dense, quantized, new QuantizeOptions { Scheme = "W8A8" }, cancellation: TestContext.Current.CancellationToken);
        string[] args = ["eval", "--model", quantized, "--dataset", SharedData.Path("data/tinystories/tinystories_sample_cs336.txt"),
                         "--seq-len", "64", "--max-windows", "3", "--kl-base", dense, "--json"];
        var (exit, output, error) = InspectCommandTests.Llmq(args);
        Assert.True(exit == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal("compressed-tensors", (string)json["format"]!);
        double kl = (double)json["mean_kl"]!;
        Assert.InRange(kl, 1e-7, 0.05);   // int8 channel weights (activations are not quantized in eval): close, not identical
    }

    [Fact]
    public void MissingDatasetIsOneLineAndExitTwo()
    {
        var (exit, _, error) = InspectCommandTests.Llmq("eval", "--model", SharedData.Path("models/stories260K-hf"), "--dataset", "/nonexistent/data.txt");
        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent/data.txt", error);
        Assert.Single(error.TrimEnd().Split('\n'));
    }
}
