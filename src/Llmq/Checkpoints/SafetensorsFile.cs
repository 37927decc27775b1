using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace Llmq.Checkpoints;

/// <summary>One .safetensors file, memory-mapped read-only. Layout: an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}, then the data
/// section, with offsets relative to its start. The whole header is validated on open — length bound, JSON shape, dtype,
/// shape × itemsize = byte range, ranges inside the data section and not overlapping — before any offset is trusted.</summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Header length bound, the one the reference implementation enforces.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly Dictionary<string, TensorInfo> byName;
    readonly MemoryMappedFile map;
    readonly MemoryMappedViewAccessor view;
    byte* start;

    public string Path { get; }
    public long Length { get; }
    /// <summary>Absolute offset of the data section: 8 + header length.</summary>
    public long DataStart { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>The tensors in data order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    SafetensorsFile(string path, long length, long dataStart, Dictionary<string, string> metadata, List<TensorInfo> tensors,
        MemoryMappedFile map)
    {
        Path = path;
        Length = length;
        DataStart = dataStart;
        Metadata = metadata;
        Tensors = tensors;
        byName = tensors.ToDictionary(t => t.Name);
        this.map = map;
        view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        start += view.PointerOffset;
    }

    public static SafetensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LlmqException($"{path}: cannot open: {e.Message}", e);
        }
        try
        {
            var (dataStart, metadata, tensors) = ReadHeader(path, stream);
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            return new SafetensorsFile(path, stream.Length, dataStart, metadata, tensors, map);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => byName.ContainsKey(name);

    public TensorInfo Info(string name) =>
        byName.TryGetValue(name, out var info) ? info : throw new LlmqException($"{Path}: no tensor named '{name}'");

    /// <summary>The tensor's bytes, zero copy (valid until Dispose). Tensors of 2 GiB or more: use the slice overload.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        var info = Info(name);
        if (info.ByteLength > int.MaxValue)
            throw new LlmqException($"{Path}: tensor '{name}' is {info.ByteLength} bytes, too large for one span; read it in slices");
        return new ReadOnlySpan<byte>(start + info.DataOffset, (int)info.ByteLength);
    }

    /// <summary><paramref name="length"/> bytes of the tensor from byte <paramref name="offset"/> of its data, zero copy.</summary>
    public ReadOnlySpan<byte> Bytes(string name, long offset, int length)
    {
        var info = Info(name);
        if (offset < 0 || length < 0 || offset + length > info.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) outside the tensor's {info.ByteLength} bytes");
        return new ReadOnlySpan<byte>(start + info.DataOffset + offset, length);
    }

    internal byte* Pointer(TensorInfo info) => start + info.DataOffset;

    public void Dispose()
    {
        if (start != null)
        {
            start = null;
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        view.Dispose();
        map.Dispose();
    }

    static (long DataStart, Dictionary<string, string> Metadata, List<TensorInfo> Tensors) ReadHeader(string path, FileStream stream)
    {
        long length = stream.Length;
        if (length < 8)
            throw Invalid(path, null, $"file is {length} bytes, too short for the 8-byte header length");
        Span<byte> prefix = stackalloc byte[9];
        int got = stream.ReadAtLeast(prefix, (int)Math.Min(9, length), throwOnEndOfStream: false);
        ulong headerLength = BitConverter.ToUInt64(prefix[..8]);
        if (headerLength > MaxHeaderBytes)
            throw Invalid(path, null, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if (8 + (long)headerLength > length)
            throw Invalid(path, null, $"header length {headerLength} runs past the end of the {length}-byte file");
        // The reference writer always starts the header with '{': checking it first rejects garbage (a header of
        // spaces, text, a wrong file) without reading it.
        if (headerLength < 2 || got < 9 || prefix[8] != (byte)'{')
            throw Invalid(path, null, "header is not a JSON object");

        var header = new byte[headerLength];
        stream.Position = 8;
        stream.ReadExactly(header);
        long dataStart = 8 + (long)headerLength, dataLength = length - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Invalid(path, null, $"header is not well-formed JSON: {e.Message}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw Invalid(path, null, "header is not a JSON object");
            var metadata = new Dictionary<string, string>();
            var tensors = new List<TensorInfo>();
            var seen = new HashSet<string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw Invalid(path, property.Name, "appears twice in the header");
                if (property.Name == "__metadata__")
                    ReadMetadata(path, property.Value, metadata);
                else
                    tensors.Add(ReadEntry(path, property.Name, property.Value, dataStart, dataLength));
            }
            tensors.Sort((a, b) => a.DataOffset != b.DataOffset ? a.DataOffset.CompareTo(b.DataOffset) : a.ByteLength.CompareTo(b.ByteLength));
            for (int i = 1; i < tensors.Count; i++)
            {
                var before = tensors[i - 1];
                if (tensors[i].DataOffset < before.DataOffset + before.ByteLength)
                    throw Invalid(path, tensors[i].Name, $"data range overlaps tensor '{before.Name}'");
            }
            return (dataStart, metadata, tensors);
        }
    }

    static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(path, null, "__metadata__ is not an object");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw Invalid(path, null, $"__metadata__ value '{entry.Name}' is not a string");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    static TensorInfo ReadEntry(string path, string name, JsonElement value, long dataStart, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(path, name, "header entry is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Invalid(path, name, "missing dtype");
        var dtypeName = dtypeElement.GetString()!;
        var dtype = DTypes.TryParse(dtypeName) ?? throw Invalid(path, name, $"unknown dtype '{dtypeName}'");
        var shape = ReadIntegers(path, name, value, "shape", -1);
        var offsets = ReadIntegers(path, name, value, "data_offsets", 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw Invalid(path, name, $"data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw Invalid(path, name, $"data_offsets [{begin}, {end}] run past the {dataLength}-byte data section");
        long bytes;
        try
        {
            bytes = checked(TensorInfo.ElementsOf(shape) * DTypes.Size(dtype));
        }
        catch (OverflowException)
        {
            throw Invalid(path, name, "shape has more elements than a file can hold");
        }
        if (bytes != end - begin)
            throw Invalid(path, name, $"shape [{string.Join(", ", shape)}] of {dtypeName} is {bytes} bytes but data_offsets span {end - begin}");
        return new TensorInfo(name, dtype, shape, path, dataStart + begin, bytes);
    }

    static long[] ReadIntegers(string path, string name, JsonElement entry, string field, int count)
    {
        if (!entry.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw Invalid(path, name, $"missing {field}");
        if (count >= 0 && array.GetArrayLength() != count)
            throw Invalid(path, name, $"{field} must have {count} entries");
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var v) || v < 0)
                throw Invalid(path, name, $"{field} holds '{item.GetRawText()}', not a non-negative integer");
            values[i++] = v;
        }
        return values;
    }

    static InvalidCheckpointException Invalid(string path, string? tensor, string problem) => new(path, tensor, problem);
}
