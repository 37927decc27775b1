using System.Buffers.Binary;
using System.Text;
using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>GGUF v3 round trips and hostile headers: every malformed file must fail with InvalidCheckpointException
/// (naming the file), never with another exception, an allocation of the claimed size, or a read past the end.</summary>
public sealed class GgufFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("llmq-gguf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(Action<GgufWriter> build, uint alignment = 32)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():N}.gguf");
        using var w = new GgufWriter(path, alignment);
        build(w);
        return path;
    }

    static void SampleMetadata(GgufWriter w)
    {
        w.Add("general.architecture", GgufValue.Str("llama"));
        w.Add("u8", GgufValue.U8(200));
        w.Add("i8", GgufValue.I8(-5));
        w.Add("u16", GgufValue.U16(65000));
        w.Add("i16", GgufValue.I16(-30000));
        w.Add("u32", GgufValue.U32(4000000000));
        w.Add("i32", GgufValue.I32(-2000000000));
        w.Add("f32", GgufValue.F32(1e-5f));
        w.Add("bool", GgufValue.Bool(true));
        w.Add("u64", GgufValue.U64(ulong.MaxValue));
        w.Add("i64", GgufValue.I64(long.MinValue));
        w.Add("f64", GgufValue.F64(Math.PI));
        w.Add("tokens", GgufValue.Array(new[] { "<s>", "▁the", "" }));
        w.Add("scores", GgufValue.Array(new[] { 0f, -1.5f }));
        w.Add("types", GgufValue.Array(new[] { 1, 3, 6 }));
        w.Add("flags", GgufValue.Array(new[] { true, false }));
        w.Add("nested", GgufValue.ArrayOfArrays([GgufValue.Array(new ushort[] { 1, 2 }), GgufValue.Array(new[] { "a" })]));
    }

    [Fact]
    public void MetadataOfEveryTypeRoundTrips()
    {
        var path = Write(w => { SampleMetadata(w); w.WriteHeader(); w.Finish(); });
        using var r = GgufReader.Open(path);
        Assert.Equal(3u, r.Version);
        Assert.Equal("llama", r.GetString("general.architecture"));
        Assert.Equal((byte)200, r.Metadata["u8"].Value);
        Assert.Equal((sbyte)-5, r.Metadata["i8"].Value);
        Assert.Equal((ushort)65000, r.Metadata["u16"].Value);
        Assert.Equal((short)-30000, r.Metadata["i16"].Value);
        Assert.Equal(4000000000u, r.Metadata["u32"].Value);
        Assert.Equal(-2000000000, r.Metadata["i32"].Value);
        Assert.Equal(1e-5f, r.Metadata["f32"].Value);
        Assert.True(r.Metadata["bool"].AsBool());
        Assert.Equal(ulong.MaxValue, r.Metadata["u64"].Value);
        Assert.Equal(long.MinValue, r.Metadata["i64"].AsInt64());
        Assert.Equal(Math.PI, r.Metadata["f64"].AsDouble());
        Assert.Equal(new[] { "<s>", "▁the", "" }, r.Metadata["tokens"].AsArray<string>());
        Assert.Equal(new[] { 0f, -1.5f }, r.Metadata["scores"].AsArray<float>());
        Assert.Equal(new[] { 1, 3, 6 }, r.Metadata["types"].AsArray<int>());
        Assert.Equal(new[] { true, false }, r.Metadata["flags"].AsArray<bool>());
        var nested = r.Metadata["nested"].AsArray<GgufValue>();
        Assert.Equal(new ushort[] { 1, 2 }, nested[0].AsArray<ushort>());
        Assert.Equal(new[] { "a" }, nested[1].AsArray<string>());
        Assert.Equal("general.architecture", r.MetadataKeys[0]);
        Assert.Equal(17, r.MetadataKeys.Count);
    }

    [Fact]
    public void TensorsRoundTripAlignedAndInOrder()
    {
        var a = Enumerable.Range(0, 64).Select(i => (float)i).ToArray();
        var q = new byte[GgmlTypes.RowSize(GgmlType.Q8_0, 64) * 2];
        var weights = Enumerable.Range(0, 128).Select(i => MathF.Sin(i)).ToArray();
        GgmlQuants.QuantizeRows(GgmlType.Q8_0, weights, q, 64);
        var path = Write(w =>
        {
            w.Add("general.architecture", GgufValue.Str("llama"));
            w.AddTensor("norm.weight", GgmlType.F32, [64]);
            w.AddTensor("blk.0.attn_q.weight", GgmlType.Q8_0, [64, 2]);
            w.WriteHeader();
            w.WriteTensor("norm.weight", System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
            w.Write(q.AsSpan(0, 10));   // in pieces
            w.Write(q.AsSpan(10));
            w.Finish();
        }, alignment: 64);
        using var r = GgufReader.Open(path);
        Assert.Equal(64u, r.Alignment);
        Assert.Equal(["norm.weight", "blk.0.attn_q.weight"], r.Tensors.Select(t => t.Name));
        var t1 = r.Info("blk.0.attn_q.weight");
        Assert.Equal([64L, 2L], t1.Dimensions);
        Assert.Equal([2L, 64L], t1.Shape);
        Assert.Equal(0, t1.FileOffset % 64);
        Assert.Equal(a, r.ReadFloat32("norm.weight"));
        Assert.Equal(q, r.Bytes("blk.0.attn_q.weight").ToArray());
        var back = r.ReadFloat32("blk.0.attn_q.weight");
        Assert.All(back.Zip(weights), p => Assert.True(MathF.Abs(p.First - p.Second) < 0.01f));
    }

    [Fact]
    public void WriterRefusesMisuse()
    {
        var path = Path.Combine(_dir, "misuse.gguf");
        using var w = new GgufWriter(path);
        Assert.Throws<LlmqException>(() => w.AddTensor(new string('x', 64), GgmlType.F32, [1]));
        Assert.Throws<LlmqException>(() => w.AddTensor("t", GgmlType.Q4_0, [33]));
        w.AddTensor("t", GgmlType.F32, [4]);
        w.WriteHeader();
        Assert.Throws<InvalidOperationException>(() => w.WriteTensor("u", new byte[16]));
        Assert.Throws<ArgumentException>(() => w.WriteTensor("t", new byte[15]));
        Assert.Throws<InvalidOperationException>(() => w.Finish());
    }

    byte[] ValidFile()
    {
        var path = Write(w =>
        {
            SampleMetadata(w);
            w.AddTensor("a", GgmlType.F32, [8]);
            w.AddTensor("b", GgmlType.Q4_0, [32, 2]);
            w.WriteHeader();
            w.WriteTensor("a", new byte[32]);
            w.WriteTensor("b", new byte[36]);
            w.Finish();
        });
        return File.ReadAllBytes(path);
    }

    void AssertRejected(byte[] bytes, string? contains = null)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidCheckpointException>(() => GgufReader.Open(path).Dispose());
        Assert.Equal(path, e.File);
        if (contains is not null) Assert.Contains(contains, e.Message);
    }

    [Fact]
    public void EveryTruncationIsRejected()
    {
        var bytes = ValidFile();
        // the last tensor's data ends 4 bytes before the final 32-byte padding boundary
        int end = bytes.Length - 28;
        for (int n = 0; n < end; n += n < 100 ? 1 : 9)
            AssertRejected(bytes[..n]);
    }

    /// <summary>Header offsets of a tiny file built by hand: magic, version, counts, one kv, one tensor info.</summary>
    static byte[] Handmade(ulong tensorCount = 1, ulong kvCount = 1, ulong keyLength = 1, uint valueType = 4,
        uint nDims = 1, ulong ne0 = 8, uint ggmlType = 0, ulong offset = 0, int dataBytes = 32, uint magic = 0x46554747)
    {
        var b = new List<byte>();
        void U32(uint v) { var t = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(t, v); b.AddRange(t); }
        void U64(ulong v) { var t = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(t, v); b.AddRange(t); }
        U32(magic); U32(3); U64(tensorCount); U64(kvCount);
        U64(keyLength); b.Add((byte)'k'); U32(valueType); U32(7);
        U64(1); b.Add((byte)'t'); U32(nDims); for (int d = 0; d < nDims; d++) U64(ne0); U32(ggmlType); U64(offset);
        while (b.Count % 32 != 0) b.Add(0);
        b.AddRange(new byte[dataBytes]);
        return b.ToArray();
    }

    [Fact]
    public void HandmadeBaselineIsValid()
    {
        var path = Path.Combine(_dir, "ok.gguf");
        File.WriteAllBytes(path, Handmade());
        using var r = GgufReader.Open(path);
        Assert.Equal(7u, r.Metadata["k"].Value);
        Assert.Equal(32, r.Info("t").ByteLength);
    }

    [Fact]
    public void HostileHeadersAreRejected()
    {
        AssertRejected(Handmade(magic: 0x12345678), "magic");
        AssertRejected(Handmade(tensorCount: ulong.MaxValue), "tensor count");
        AssertRejected(Handmade(tensorCount: 1L << 40), "tensor count");
        AssertRejected(Handmade(kvCount: 1L << 40), "metadata count");
        AssertRejected(Handmade(keyLength: ulong.MaxValue), "claims");
        AssertRejected(Handmade(keyLength: 1 << 30), "claims");
        AssertRejected(Handmade(valueType: 99), "unknown value type");
        AssertRejected(Handmade(nDims: 5), "dimensions");
        AssertRejected(Handmade(ne0: 1UL << 62, nDims: 2), "overflow");
        AssertRejected(Handmade(ggmlType: 77), "unknown ggml type");
        AssertRejected(Handmade(ggmlType: 2), "block size");        // Q4_0 with 8 columns
        AssertRejected(Handmade(offset: 16), "alignment");
        AssertRejected(Handmade(offset: 1 << 20), "past the end");
        AssertRejected(Handmade(dataBytes: 31), "past the end");
        AssertRejected(Handmade(ne0: ulong.MaxValue), "overflow");
    }

    [Fact]
    public void HugeArrayCountsAreRejectedBeforeAllocating()
    {
        var bytes = ValidFile();
        // the "scores" array: find its key, then patch the u64 length after the element type
        var key = Encoding.UTF8.GetBytes("scores");
        int at = bytes.AsSpan().IndexOf(key) + key.Length + 4 /* value type */ + 4 /* element type */;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), 1UL << 60);
        AssertRejected(bytes, "length of array");
    }

    [Fact]
    public void DuplicateNamesAndKeysAreRejected()
    {
        var bytes = ValidFile();
        // rename tensor "b" to "a"
        int at = bytes.AsSpan().LastIndexOf(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, (byte)'b' });
        bytes[at + 8] = (byte)'a';
        AssertRejected(bytes, "duplicate tensor");
        var bytes2 = ValidFile();
        int i8 = bytes2.AsSpan().IndexOf(new byte[] { 2, 0, 0, 0, 0, 0, 0, 0, (byte)'i', (byte)'8' });
        bytes2[i8 + 8] = (byte)'u';
        AssertRejected(bytes2, "duplicate metadata key");
    }

    [Fact]
    public void BadAlignmentIsRejected()
    {
        var path = Write(w => { w.WriteHeader(); w.Finish(); }, alignment: 64);
        var bytes = File.ReadAllBytes(path);
        int at = bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes("general.alignment")) + "general.alignment".Length + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), 48);
        AssertRejected(bytes, "power of two");
    }
}
