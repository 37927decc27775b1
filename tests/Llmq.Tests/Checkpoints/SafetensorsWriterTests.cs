using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Tests.Checkpoints;

public class SafetensorsWriterTests : TempDirectoryTests
{
    static byte[] Pattern(int n, int seed) => Enumerable.Range(0, n).Select(i => (byte)(i * 31 + seed)).ToArray();

    [Fact]
    public void SingleFileRoundTrip()
    {
        using (var writer = new SafetensorsWriter(temp.Path))
        {
            writer.Add("a", DType.U8, [3, 5], Pattern(15, 1));
            writer.Add("scalar", DType.F32, [], Pattern(4, 2));
            writer.Add("empty", DType.BF16, [0, 7], []);
            writer.Add("naïve.weight", DType.I32, [2], Pattern(8, 3));
            Assert.Equal(["model.safetensors"], writer.Finish(new Dictionary<string, string> { ["note"] = "x" }));
        }
        Assert.Equal(["model.safetensors"], Directory.GetFiles(temp.Path).Select(Path.GetFileName));
        var bytes = File.ReadAllBytes(temp["model.safetensors"]);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        Assert.Equal(8 + headerLength + 27, bytes.Length); // no padding beyond the 8-byte alignment, no gaps
        Assert.Equal((byte)'{', bytes[8]);

        using var file = SafetensorsFile.Open(temp["model.safetensors"]);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("x", file.Metadata["note"]);
        Assert.Equal(Pattern(15, 1), file.Bytes("a").ToArray());
        Assert.Equal(Pattern(4, 2), file.Bytes("scalar").ToArray());
        Assert.Empty(file.Info("scalar").Shape);
        Assert.Equal(0, file.Bytes("empty").Length);
        Assert.Equal(Pattern(8, 3), file.Bytes("naïve.weight").ToArray());
        Assert.Equal(["a", "scalar", "empty", "naïve.weight"], file.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void ShardsByMaxSizeAndWritesTheIndex()
    {
        var sizes = new[] { 40, 30, 100, 10, 10, 10, 45 };
        using (var writer = new SafetensorsWriter(temp.Path, maxShardBytes: 64))
        {
            for (int i = 0; i < sizes.Length; i++)
                writer.Add($"t{i}", DType.U8, [sizes[i]], Pattern(sizes[i], i));
            Assert.Equal(5, writer.Finish().Count);
        }
        // [40] [30] [100: alone, over the limit] [10 10 10] [45]
        using var checkpoint = Checkpoint.Open(temp.Path);
        Assert.Equal(5, checkpoint.Files.Count);
        Assert.Equal([40L, 30, 100, 30, 45], checkpoint.Files.Select(f => f.Tensors.Sum(t => t.ByteLength)));
        Assert.Equal("model-00002-of-00005.safetensors", Path.GetFileName(checkpoint.Info("t1").File));
        for (int i = 0; i < sizes.Length; i++)
            Assert.Equal(Pattern(sizes[i], i), checkpoint.Bytes($"t{i}").ToArray());
        var index = JsonNode.Parse(File.ReadAllText(temp[Checkpoint.IndexFileName]))!;
        Assert.Equal(sizes.Sum(), index["metadata"]!["total_size"]!.GetValue<long>());
        Assert.Equal("model-00004-of-00005.safetensors", index["weight_map"]!["t5"]!.GetValue<string>());
        Assert.Empty(Directory.GetFiles(temp.Path, "*.partial"));
    }

    [Fact]
    public void LargeShardsAreWrittenInPlaceAfterAReservedHeader()
    {
        var writer = new SafetensorsWriter(temp.Path, maxShardBytes: 1 << 20) { StageLimit = 1000, MinReservation = 4096 };
        using (writer)
        {
            for (int i = 0; i < 40; i++)
            {
                writer.Begin($"layer.{i}", DType.U8, [3, 200]);
                writer.Append(Pattern(100, i));
                writer.Append(Pattern(500, i + 1));
                writer.End();
            }
            writer.Finish(new Dictionary<string, string> { ["big"] = new string('m', 20_000) }); // outgrows the reservation
        }
        using var checkpoint = Checkpoint.Open(temp.Path);
        Assert.True(checkpoint.Files.Count > 1, "a 4 KB reservation holds only some of the 40 entries");
        for (int i = 0; i < 40; i++)
            Assert.Equal(Pattern(100, i).Concat(Pattern(500, i + 1)), checkpoint.Bytes($"layer.{i}").ToArray());
        Assert.All(checkpoint.Files, f => Assert.Equal(20_000, f.Metadata["big"].Length));
    }

    [Fact]
    public void DisposeWithoutFinishLeavesNothing()
    {
        using (var writer = new SafetensorsWriter(temp.Path, maxShardBytes: 10) { StageLimit = 5 })
        {
            writer.Add("a", DType.U8, [8], Pattern(8, 0));
            writer.Add("b", DType.U8, [8], Pattern(8, 0));
        }
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void MisuseIsRefused()
    {
        using var writer = new SafetensorsWriter(temp.Path);
        writer.Add("a", DType.F32, [1], new byte[4]);
        Assert.Throws<ArgumentException>(() => writer.Add("a", DType.F32, [1], new byte[4]));
        Assert.Throws<ArgumentException>(() => writer.Add("b", DType.F32, [2], new byte[12]));
        writer.Begin("c", DType.F32, [2]);
        Assert.Throws<InvalidOperationException>(() => writer.Finish());
        writer.Append(new byte[4]);
        Assert.Throws<InvalidOperationException>(() => writer.End());
    }

    [Fact]
    public void AnEmptyCheckpointIsStillValid()
    {
        using (var writer = new SafetensorsWriter(temp.Path))
            writer.Finish();
        using var file = SafetensorsFile.Open(temp["model.safetensors"]);
        Assert.Empty(file.Tensors);
        Assert.StartsWith("{\"__metadata__\"", Encoding.UTF8.GetString(File.ReadAllBytes(temp["model.safetensors"])[8..]));
    }
}
