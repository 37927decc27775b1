using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Numerics;

namespace Llmq.Tests.Checkpoints;

public class CheckpointTests : TempDirectoryTests
{
    [Fact]
    public void ReadsStories260K()
    {
        using var checkpoint = Checkpoint.Open(SharedData.Path("models/stories260K-hf"));
        Assert.Equal(260_032, checkpoint.Tensors.Sum(t => t.ElementCount));
        var embed = checkpoint.Info("model.embed_tokens.weight");
        Assert.Equal([512L, 64], embed.Shape);
        Assert.Equal(DType.F32, embed.DType);
        var values = checkpoint.ReadFloat32("model.embed_tokens.weight");
        Assert.Equal(BitConverter.ToSingle(checkpoint.Bytes("model.embed_tokens.weight")[..4]), values[0]);
        Assert.Contains(values, v => v != 0);
    }

    [Fact]
    public void ConvertsEveryFloatDTypeToFloat32()
    {
        var values = new float[] { 1f, -2.5f, 0.1f, 65504f, -0f, 3.14159f };
        using (var writer = new SafetensorsWriter(temp.Path))
        {
            writer.AddFloat32("f32", [2, 3], values);
            writer.AddFloat32("bf16", [6], values, DType.BF16);
            writer.AddFloat32("f16", [3, 2], values, DType.F16);
            writer.Add("f64", DType.F64, [6], System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (double)v).ToArray().AsSpan()));
            writer.Add("i8", DType.I8, [2], [1, 2]);
            writer.Finish();
        }
        using var checkpoint = Checkpoint.Open(temp.Path);
        Assert.Equal(values, checkpoint.ReadFloat32("f32"));
        Assert.Equal(values, checkpoint.ReadFloat32("f64"));
        Assert.Equal(values.Select(v => BFloat16.ToFloat(BFloat16.FromFloat(v))), checkpoint.ReadFloat32("bf16"));
        Assert.Equal(values.Select(v => (float)(Half)v), checkpoint.ReadFloat32("f16"));
        Assert.Throws<LlmqException>(() => checkpoint.ReadFloat32("i8"));
        Assert.Throws<LlmqException>(() => checkpoint.Info("absent"));
        Assert.Throws<ArgumentException>(() => checkpoint.ReadFloat32("f32", new float[5]));
        // a range of elements, as a streaming reader takes a block of rows at a time
        foreach (var name in new[] { "f32", "bf16", "f16", "f64" })
        {
            var part = new float[3];
            checkpoint.ReadFloat32(name, 2, part);
            Assert.Equal(checkpoint.ReadFloat32(name)[2..5], part);
        }
        Assert.Throws<ArgumentException>(() => checkpoint.ReadFloat32("f32", 4, new float[3]));
        Assert.Throws<ArgumentException>(() => checkpoint.ReadFloat32("f32", -1, new float[1]));
    }

    [Fact]
    public void LargeTensorsConvertInParallelChunks()
    {
        var values = new float[(2 << 20) + 3]; // three 1M-element chunks, the last of 3
        for (int i = 0; i < values.Length; i++)
            values[i] = MathF.Sin(i * 0.001f) * (1 + i % 7);
        using (var writer = new SafetensorsWriter(temp.Path))
        {
            writer.AddFloat32("w", [values.Length], values, DType.BF16);
            writer.Finish();
        }
        using var checkpoint = Checkpoint.Open(temp["model.safetensors"]);
        var read = checkpoint.ReadFloat32("w");
        for (int i = 0; i < values.Length; i += 97)
            Assert.Equal(BFloat16.ToFloat(BFloat16.FromFloat(values[i])), read[i]);
        Assert.Equal(BFloat16.ToFloat(BFloat16.FromFloat(values[^1])), read[^1]);
    }

    void WriteSharded(string dir)
    {
        using var writer = new SafetensorsWriter(dir, maxShardBytes: 64);
        for (int i = 0; i < 5; i++)
            writer.AddFloat32($"t{i}", [10], Enumerable.Range(0, 10).Select(j => (float)(i * 10 + j)).ToArray());
        writer.Finish();
    }

    void RewriteIndex(string dir, string tensor, string shard)
    {
        var path = Path.Combine(dir, Checkpoint.IndexFileName);
        var index = JsonNode.Parse(File.ReadAllText(path))!;
        index["weight_map"]![tensor] = shard;
        File.WriteAllText(path, index.ToJsonString());
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("sub/../../outside.safetensors")]
    [InlineData("/tmp/outside.safetensors")]
    [InlineData("")]
    public void ShardNamesMayNotLeaveTheDirectory(string shard)
    {
        var dir = temp["model"];
        WriteSharded(dir);
        File.Copy(Path.Combine(dir, "model-00001-of-00005.safetensors"), temp["outside.safetensors"]);
        RewriteIndex(dir, "t0", shard);
        var e = Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir));
        Assert.Equal("t0", e.Tensor);
        Assert.EndsWith(Checkpoint.IndexFileName, e.File);
    }

    [Fact]
    public void ShardLinksMayNotLeadOut()
    {
        var dir = temp["model"];
        WriteSharded(dir);
        File.Copy(Path.Combine(dir, "model-00001-of-00005.safetensors"), temp["outside.safetensors"]);
        File.CreateSymbolicLink(Path.Combine(dir, "escape.safetensors"), temp["outside.safetensors"]);
        Directory.CreateSymbolicLink(Path.Combine(dir, "up"), temp.Path);
        RewriteIndex(dir, "t0", "escape.safetensors");
        Assert.Contains("leads out", Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir)).Message);
        RewriteIndex(dir, "t0", "up/outside.safetensors");
        Assert.Contains("leads out", Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir)).Message);

        // A link that stays inside is fine.
        File.CreateSymbolicLink(Path.Combine(dir, "inside.safetensors"), Path.Combine(dir, "model-00001-of-00005.safetensors"));
        RewriteIndex(dir, "t0", "inside.safetensors");
        using var checkpoint = Checkpoint.Open(dir);
        Assert.Equal(0f, checkpoint.ReadFloat32("t0")[0]);
    }

    [Fact]
    public void IndexMustMatchItsShards()
    {
        var dir = temp["model"];
        WriteSharded(dir);
        RewriteIndex(dir, "t0", "model-00002-of-00005.safetensors");
        Assert.Equal("t0", Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir)).Tensor);
        RewriteIndex(dir, "t0", "missing.safetensors");
        Assert.Contains("does not exist", Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir)).Message);
        File.WriteAllText(Path.Combine(dir, Checkpoint.IndexFileName), "{\"weight_map\": [");
        Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir));
    }

    [Fact]
    public void ADirectoryWithoutWeightsIsNotAModel()
    {
        Assert.Contains("not a model", Assert.Throws<LlmqException>(() => Checkpoint.Open(temp.Path)).Message);
        Assert.Throws<LlmqException>(() => Checkpoint.Open(temp["absent"]));
    }

    [Fact]
    public void CorruptShardIsNamed()
    {
        var dir = temp["model"];
        WriteSharded(dir);
        var shard = Path.Combine(dir, "model-00003-of-00005.safetensors");
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..20]);
        Assert.Equal(shard, Assert.Throws<InvalidCheckpointException>(() => Checkpoint.Open(dir)).File);
    }
}
