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

    [Theory]
    [InlineData("--type", "Q4_K_M", "--method", "gptq")]
    [InlineData("--type", "Q4_0", "--imatrix", "x.dat", "--dataset", "DATASET")]
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
