using System.Text.Json.Nodes;
using Llmq.Evaluation;
using Llmq.Formats.Gguf;
using Llmq.Tokenization;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>GGUF read back for evaluation: the F32 file reproduces the original model's logits exactly (the q/k
/// permutation is undone) and a quantized file evaluates within 1% of its dequantized-safetensors twin; `llmq inspect` describes
/// the file; `llmq decompress` and `llmq eval` take it (the tokenizer beside it).</summary>
public class GgufEvaluationTests
{
    static string Stories => SharedData.Path("models/stories260K-hf");

    static int[] Tokens()
    {
        var text = File.ReadAllText(SharedData.Path("data/tinystories/tinystories_val_moe-routing-bench.txt"))[..6000];
        return ModelTokenizer.Load(Stories).Encode(text);
    }

    [Fact]
    public void F32GgufGivesTheOriginalLogits()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["f32.gguf"], new GgufConvertOptions { FileType = GgufFileType.F32 }).Path;
        using var gguf = EvaluationModel.Open(path);
        using var dense = EvaluationModel.Open(Stories);
        Assert.Equal("gguf", gguf.Format);
        int[] ids = [1, 403, 407, 261, 378];
        Assert.Equal(dense.Model.Forward(ids), gguf.Model.Forward(ids));
    }

    [Fact]
    public void QuantizedGgufPerplexityMatchesItsDecompressedSafetensors()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["q.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_0 }).Path;
        var decompressed = GgufDecompressor.Decompress(path, dir["dense"], Llmq.Checkpoints.DType.F32, overwrite: false);
        var tokens = Tokens();
        var options = new PerplexityOptions { SeqLen = 256, MaxWindows = 4 };
        using var gguf = EvaluationModel.Open(path);
        using var dense = EvaluationModel.Open(decompressed);
        double a = Perplexity.Evaluate(new DecoderLogitsModel(gguf.Model), tokens, options).Perplexity;
        double b = Perplexity.Evaluate(new DecoderLogitsModel(dense.Model), tokens, options).Perplexity;
        Console.WriteLine($"stories260K Q4_0 perplexity: gguf {a:F4}, decompressed safetensors {b:F4}");
        Assert.True(Math.Abs(a - b) / b < 0.01, $"gguf {a}, decompressed {b}");
    }

    [Fact]
    public void InspectorDescribesGguf()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_K_M }).Path;
        var report = Llmq.Checkpoints.ModelInspector.Inspect(path);
        Assert.Equal("gguf v3", report.Format);
        Assert.Equal("llama", report.Architecture);
        Assert.Equal("Q4_K_M", report.Quantization!.Format);
        Assert.Contains(report.DTypes, d => d.DType == "q5_0");
    }

    [Fact]
    public void CliDecompressesAndEvaluatesGguf()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["q.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_0 }).Path;
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            if (File.Exists(Path.Combine(Stories, file))) File.Copy(Path.Combine(Stories, file), dir[file]);
        var (exit, _, error) = Llmq.Tests.Cli.InspectCommandTests.Llmq("decompress", path, dir["dense"], "--dtype", "f32");
        Assert.True(exit == 0, error);
        Assert.True(File.Exists(Path.Combine(dir["dense"], "tokenizer.json")));
        (exit, var output, error) = Llmq.Tests.Cli.InspectCommandTests.Llmq("eval", "--model", path,
            "--dataset", SharedData.Path("data/tinystories/tinystories_sample_cs336.txt"),
            "--seq-len", "64", "--max-windows", "3", "--kl-base", dir["dense"], "--json");
        Assert.True(exit == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal("gguf", (string)json["format"]!);
        Assert.Equal(0.0, (double)json["mean_kl"]!, 6);   // the same weights, dequantized once to f32
    }

    [Fact]
    public void ImatrixFromCalibrationRoundTripsThroughBothFileFormats()
    {
        using var model = Llmq.Models.DecoderModel.Open(Stories);
        var samples = new[] { Tokens()[..64], Tokens()[64..128] };
        var m = ImatrixCollector.Compute(model, samples, "tinystories");
        Assert.Equal(5 * 7, m.Count);   // q, k, v, o, gate, up, down per layer
        var w = m.Weights("blk.0.attn_q.weight")!;
        Assert.Equal(64, w.Length);
        Assert.Equal(w, m.Weights("blk.0.attn_k.weight"));
        Assert.Equal(172, m.Weights("blk.4.ffn_down.weight")!.Length);
        using var dir = new TempDirectory();
        m.SaveGguf(dir["i.gguf"]);
        m.SaveLegacy(dir["i.dat"]);
        foreach (var file in new[] { dir["i.gguf"], dir["i.dat"] })
        {
            var back = ImportanceMatrix.Load(file);
            Assert.Equal(m.Names, back.Names);
            var wb = back.Weights("blk.0.attn_q.weight")!;
            for (int j = 0; j < w.Length; j++) Assert.Equal(w[j], wb[j], w[j] * 1e-5f);
        }
        var path = GgufConverter.Convert(Stories, dir["imat.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_K_M, Imatrix = m }).Path;
        using var r = GgufReader.Open(path);
        Assert.Equal(35u, r.Metadata["quantize.imatrix.entries_count"].Value);
    }
}
