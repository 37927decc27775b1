using Llmq.Formats.Gguf;

namespace Llmq.Tests.Cli;

/// <summary>`llmq gguf` with calibration: --dataset computes the importance matrix from our own pass (recorded in the
/// file's quantize.imatrix.* keys), --method gptq writes GPTQ-solved Q4_0 blocks, and misuse is one line on stderr.</summary>
public class GgufCommandTests
{
    static string Stories => SharedData.Path("models/stories260K-hf");
    static string Dataset => SharedData.Path("data/tinystories/tinystories_sample_cs336.txt");

    [Fact]
    public void GptqWithDatasetWritesQ4_0AndRecordsTheImatrix()
    {
        using var dir = new TempDirectory();
        var (exit, output, error) = InspectCommandTests.Llmq("gguf", "--model", Stories, "--type", "Q4_0", "--output", dir["m.gguf"],
            "--method", "gptq", "--dataset", Dataset, "--samples", "2", "--seq-len", "32");
        Assert.True(exit == 0, error);
        Assert.Contains("gptq: layer 5/5", output);
        using var r = GgufReader.Open(dir["m.gguf"]);
        Assert.Equal(GgmlType.Q4_0, r.Info("blk.0.attn_q.weight").Type);
        Assert.Equal(35u, r.Metadata["quantize.imatrix.entries_count"].Value);
        Assert.Equal(2u, r.Metadata["quantize.imatrix.chunks_count"].Value);
        Assert.Equal(Path.GetFileName(Dataset), Path.GetFileName(r.GetString("quantize.imatrix.dataset")));

        var plain = dir["plain.gguf"];
        Assert.Equal(0, InspectCommandTests.Llmq("gguf", "--model", Stories, "--type", "Q4_0", "--output", plain).Exit);
        using var p = GgufReader.Open(plain);
        Assert.False(p.Metadata.ContainsKey("quantize.imatrix.entries_count"));
        Assert.NotEqual(p.ReadFloat32("blk.0.attn_q.weight"), r.ReadFloat32("blk.0.attn_q.weight"));
    }

    [Fact]
    public void GptqKnobsReachTheSolve()
    {
        using var dir = new TempDirectory();
        string[] Run(string name, params string[] knobs) =>
            ["gguf", "--model", Stories, "--type", "Q4_0", "--output", dir[name], "--method", "gptq", "--samples", "2", "--seq-len", "32", .. knobs];
        Assert.Equal(0, InspectCommandTests.Llmq(Run("default.gguf")).Exit);
        Assert.Equal(0, InspectCommandTests.Llmq(Run("explicit.gguf", "--dampening-frac", "0.01", "--block-size", "128")).Exit);
        Assert.Equal(0, InspectCommandTests.Llmq(Run("damped.gguf", "--dampening-frac", "0.5")).Exit);
        Assert.Equal(0, InspectCommandTests.Llmq(Run("narrow.gguf", "--block-size", "16")).Exit);
        // the defaults are llm-compressor's, spelled out or not; a stronger dampening changes the solution. The block
        // size only regroups the same updates (exact in real arithmetic): whether float rounding then flips a code
        // depends on the kernels (it does with AVX-512 here, not on the scalar path), so only its run is checked
        Assert.Equal(File.ReadAllBytes(dir["default.gguf"]), File.ReadAllBytes(dir["explicit.gguf"]));
        using var d = GgufReader.Open(dir["default.gguf"]);
        using var damped = GgufReader.Open(dir["damped.gguf"]);
        Assert.NotEqual(d.ReadFloat32("blk.0.attn_q.weight"), damped.ReadFloat32("blk.0.attn_q.weight"));
        using var narrow = GgufReader.Open(dir["narrow.gguf"]);
        Assert.Equal(d.Tensors.Select(t => (t.Name, t.Type)), narrow.Tensors.Select(t => (t.Name, t.Type)));
    }

    [Theory]
    [InlineData("--type", "Q4_K_M", "--method", "gptq")]
    [InlineData("--type", "Q4_0", "--imatrix", "x.dat", "--dataset", "DATASET")]
    [InlineData("--type", "Q4_0", "--dampening-frac", "0.05")]                     // a GPTQ knob without --method gptq
    [InlineData("--type", "Q4_0", "--method", "gptq", "--dampening-frac", "-1")]
    [InlineData("--type", "Q4_0", "--method", "gptq", "--dampening-frac", "NaN")]
    [InlineData("--type", "Q4_0", "--method", "gptq", "--block-size", "0")]
    public void MisuseIsOneLineOnStderr(params string[] extra)
    {
        using var dir = new TempDirectory();
        string[] args = ["gguf", "--model", Stories, "--output", dir["m.gguf"], .. extra.Select(a => a == "DATASET" ? Dataset : a == "x.dat" ? dir["x.dat"] : a)];
        if (extra.Contains("x.dat")) new ImportanceMatrix().SaveLegacy(dir["x.dat"]);
        var (exit, _, error) = InspectCommandTests.Llmq(args);
        Assert.Equal(2, exit);
        Assert.Single(error.Trim().Split('\n'));
        Assert.False(File.Exists(dir["m.gguf"]));
    }
}
