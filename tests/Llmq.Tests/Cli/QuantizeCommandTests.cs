using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;

namespace Llmq.Tests.Cli;

/// <summary>`llmq quantize` and `llmq decompress` in-process through the real root command.</summary>
public class QuantizeCommandTests : IDisposable
{
    readonly TempDirectory temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void QuantizesAndDecompresses()
    {
        RandomModel.Write(temp["in"], RandomModelSpec.TinyLlama, seed: 1);
        var (exit, output, error) = InspectCommandTests.Llmq("quantize", "--model", temp["in"], "--scheme", "nvfp4a16", "--output", temp["q"], "--ignore", "re:.*down_proj$");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Contains("12 modules as nvfp4a16", output);
        using (var q = CompressedCheckpoint.Open(temp["q"]))
            Assert.DoesNotContain("model.layers.0.mlp.down_proj", q.QuantizedModules);

        (exit, output, error) = InspectCommandTests.Llmq("decompress", temp["q"], temp["dense"], "--dtype", "f32");
        Assert.Equal(0, exit);
        Assert.Contains("12 modules dequantized to F32", output);
        using var dense = Checkpoint.Open(temp["dense"]);
        Assert.Equal(DType.F32, dense.Info("model.layers.1.self_attn.q_proj.weight").DType);
        Assert.Equal(DType.BF16, dense.Info("model.layers.1.mlp.down_proj.weight").DType);
    }

    [Fact]
    public void StaticInputSchemesCalibrateTheirInputScales()
    {
        var model = SharedData.Path("models/stories260K-hf");
        var text = SharedData.Path("data/tinystories/tinystories_sample_cs336.txt");
        // stories260K's FFN width 172 is no multiple of 16: down_proj stays dense under NVFP4
        var (exit, output, error) = InspectCommandTests.Llmq("quantize", "--model", model, "--scheme", "NVFP4", "--ignore", "re:.*down_proj$",
            "--samples", "4", "--seq-len", "64", "--output", temp["nvfp4"]);
        Assert.True(exit == 0, error);
        Assert.Contains("NVFP4 stores static input scales: calibrating them on the built-in calibration text (up to 4 samples × 64 tokens)", output);
        Assert.Contains("30 modules as NVFP4, 4 calibration samples", output);
        using (var q = Checkpoint.Open(temp["nvfp4"]))
            Assert.Equal(DType.F32, q.Info("model.layers.4.mlp.up_proj.input_global_scale").DType);

        (exit, output, error) = InspectCommandTests.Llmq("quantize", "--model", model, "--scheme", "FP8", "--dataset", text,
            "--samples", "4", "--seq-len", "64", "--output", temp["fp8"]);
        Assert.True(exit == 0, error);
        Assert.Contains($"calibrating them on {text}", output);
        using (var q = Checkpoint.Open(temp["fp8"]))
            Assert.True(q.Contains("model.layers.4.mlp.down_proj.input_scale"));

        (exit, output, error) = InspectCommandTests.Llmq("eval", "--model", temp["fp8"], "--dataset", text, "--seq-len", "64", "--max-windows", "2",
            "--kl-base", model, "--json");
        Assert.True(exit == 0, error);
        var json = System.Text.Json.Nodes.JsonNode.Parse(output)!;
        Assert.Equal("compressed-tensors", (string)json["format"]!);
        Assert.InRange((double)json["mean_kl"]!, 1e-7, 0.1);   // FP8 weights (inputs are not quantized in eval)
    }

    [Fact]
    public void UserErrorsAreOneLineWithExitCode2()
    {
        RandomModel.Write(temp["in"], RandomModelSpec.TinyLlama, seed: 1);
        Directory.CreateDirectory(temp["exists"]);
        foreach (var args in new[]
        {
            new[] { "quantize", "--model", temp["in"], "--scheme", "W4A16", "--output", temp["exists"] },
            ["quantize", "--model", temp["in"], "--scheme", "W9A9", "--output", temp["x"]],
            ["quantize", "--model", temp["nowhere"], "--scheme", "FP8_DYNAMIC", "--output", temp["x"]],
            ["quantize", "--model", temp["in"], "--scheme", "W4A16", "--dataset", temp["text.txt"], "--output", temp["x"]],   // datafree scheme
            ["quantize", "--model", temp["in"], "--scheme", "FP8", "--output", temp["x"]],   // built-in text, but no tokenizer
            ["decompress", temp["in"], temp["x"]],
        })
        {
            var (exit, _, error) = InspectCommandTests.Llmq(args);
            Assert.Equal(2, exit);
            Assert.StartsWith("llmq: ", error);
            Assert.Single(error.TrimEnd('\n').Split('\n'));
        }
        Assert.False(Directory.Exists(temp["x"]));
    }
}

public class CompressedEvaluationTests
{
    [Fact]
    public void EvaluationReadsCompressedTensorsCheckpoints()
    {
        using var temp = new TempDirectory();
        RandomModel.Write(temp["in"], RandomModelSpec.TinyLlama, seed: 1);
        Llmq.Quantization.Quantizer.QuantizeModel(temp["in"], temp["q"], new Llmq.Quantization.QuantizeOptions { Scheme = "W8A8" },
            cancellation: TestContext.Current.CancellationToken);
        using var dense = Llmq.Evaluation.EvaluationModel.Open(temp["in"]);
        using var quantized = Llmq.Evaluation.EvaluationModel.Open(temp["q"]);
        Assert.Equal("compressed-tensors", quantized.Format);
        int[] tokens = [1, 5, 9, 200, 3, 7, 42, 11];
        var a = dense.Model.Forward(tokens, 1, tokens.Length);
        var b = quantized.Model.Forward(tokens, 1, tokens.Length);
        float maxDiff = a.Zip(b).Max(p => MathF.Abs(p.First - p.Second));
        Assert.InRange(maxDiff, 1e-6f, 0.2f);   // int8 weights: close to the dense model, but not identical
    }
}
