using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Llmq.Checkpoints;

namespace Llmq.Tests.Checkpoints;

/// <summary>Every corrupt header is refused with a typed error naming the file (and the tensor, where one is at fault).</summary>
public class SafetensorsFileTests : TempDirectoryTests
{
    /// <summary>Writes an 8-byte length (the header's own unless given), the header text, then the data.</summary>
    internal static string WriteRaw(string path, string header, int dataBytes, ulong? declaredLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    InvalidCheckpointException Refused(string path, string? tensor = null)
    {
        var e = Assert.Throws<InvalidCheckpointException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(Path.GetFullPath(path), e.File);
        Assert.Equal(tensor, e.Tensor);
        Assert.Contains(Path.GetFileName(path), e.Message);
        return e;
    }

    [Fact]
    public void ReadsAValidFile()
    {
        var path = WriteRaw(temp["ok.safetensors"],
            """{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}""", 12);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(["a", "b"], file.Tensors.Select(t => t.Name));
        Assert.Equal(8, file.Bytes("b").Length);
        Assert.Equal(file.DataStart + 4, file.Info("b").DataOffset);
    }

    [Fact]
    public void TruncatedFile()
    {
        File.WriteAllBytes(temp["short.safetensors"], [1, 2, 3]);
        Assert.Contains("too short", Refused(temp["short.safetensors"]).Message);
        var path = WriteRaw(temp["cut.safetensors"], """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 10);
        Refused(path, "w");
    }

    [Fact]
    public void HeaderLengthPastTheEnd() =>
        Assert.Contains("past the end", Refused(WriteRaw(temp["long.safetensors"], "{}", 0, declaredLength: 1000)).Message);

    [Fact]
    public void HugeHeaderLength() =>
        Assert.Contains("limit", Refused(WriteRaw(temp["huge.safetensors"], "{}", 0, declaredLength: ulong.MaxValue)).Message);

    [Fact]
    public void HundredMegabytesOfSpacesIsRefusedQuickly()
    {
        // 100,000,000 spaces: exactly at the length bound, so it is the content check that must refuse it without parsing.
        const int size = 100_000_000;
        var path = temp["spaces.safetensors"];
        using (var stream = File.Create(path))
        {
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, size);
            stream.Write(prefix);
            var spaces = new byte[1_000_000];
            spaces.AsSpan().Fill((byte)' ');
            for (int i = 0; i < size / spaces.Length; i++)
                stream.Write(spaces);
        }
        var clock = Stopwatch.StartNew();
        Assert.Contains("not a JSON object", Refused(path).Message);
        Assert.True(clock.ElapsedMilliseconds < 1000, $"{clock.ElapsedMilliseconds} ms");
        // One byte more is over the bound.
        File.AppendAllText(path, " ");
        using (var stream = new FileStream(path, FileMode.Open))
            stream.Write(BitConverter.GetBytes((ulong)size + 1));
        Assert.Contains("limit", Refused(path).Message);
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("{\"a\":")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} trailing")]
    [InlineData("not json")]
    public void MalformedJson(string header) => Refused(WriteRaw(temp["bad.safetensors"], header, 4));

    [Fact]
    public void MetadataMustBeAStringMap() =>
        Refused(WriteRaw(temp["meta.safetensors"], """{"__metadata__":{"n":1}}""", 0));

    [Fact]
    public void OverlappingRanges()
    {
        var e = Refused(WriteRaw(temp["overlap.safetensors"],
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12), "b");
        Assert.Contains("overlaps tensor 'a'", e.Message);
    }

    [Fact]
    public void UnknownDType() =>
        Assert.Contains("unknown dtype 'F12'",
            Refused(WriteRaw(temp["dtype.safetensors"], """{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}""", 4), "w").Message);

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""")]
    [InlineData("""{"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""")]
    [InlineData("""{"w":{"dtype":"F32","data_offsets":[0,8]}}""")]
    [InlineData("""{"w":[1]}""")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""")]
    public void ShapeAndRangeMismatches(string header) => Refused(WriteRaw(temp["shape.safetensors"], header, 16), "w");

    [Fact]
    public void RangePastTheDataSection() =>
        Assert.Contains("past the 8-byte data section",
            Refused(WriteRaw(temp["range.safetensors"], """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8), "w").Message);

    [Fact]
    public void MissingFileIsAUserError() =>
        Assert.Throws<LlmqException>(() => SafetensorsFile.Open(temp["absent.safetensors"]));
}
