using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Llmq.Numerics;
using Microsoft.Win32.SafeHandles;

namespace Llmq.Checkpoints;

/// <summary>Streams tensors into .safetensors shards of at most <c>maxShardBytes</c> of data each (a single tensor larger
/// than that gets a shard of its own) and, when there is more than one shard, writes model.safetensors.index.json.
///
/// Each tensor's bytes are written once, in place. A shard is first staged in memory (up to 32 MB); once it outgrows that it
/// moves to its file, which starts with a header region reserved for the JSON header (at least 1 MB, the unused tail padded
/// with spaces as the format allows), and later tensors go straight to their final offsets. A tensor whose header entry would
/// not fit the reservation starts a new shard. Headers are written at <see cref="Finish"/>, and the shards get their final
/// names (model.safetensors, or model-0000i-of-0000n.safetensors) only then; Dispose without Finish deletes them.
/// Memory stays bounded: one staged shard plus a 4 MB write buffer.</summary>
public sealed class SafetensorsWriter : IDisposable
{
    public const long DefaultMaxShardBytes = 5_000_000_000;
    const int WriteBufferBytes = 4 << 20;
    const int MetadataAllowance = 4096;

    readonly string directory, prefix;
    readonly long maxShardBytes;
    readonly List<Shard> shards = [];
    readonly HashSet<string> names = new(StringComparer.Ordinal);
    Shard? current;
    Entry? open;
    long openRemaining;
    bool finished;

    /// <summary>Largest shard kept in memory before it moves to its file (tests lower it).</summary>
    internal int StageLimit { get; init; } = 32 << 20;
    /// <summary>Smallest header region reserved in a shard file (tests lower it).</summary>
    internal int MinReservation { get; init; } = 1 << 20;

    public SafetensorsWriter(string directory, long maxShardBytes = DefaultMaxShardBytes, string filePrefix = "model")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        this.directory = Path.GetFullPath(directory);
        this.maxShardBytes = maxShardBytes;
        prefix = filePrefix;
        Directory.CreateDirectory(this.directory);
    }

    /// <summary>Bytes of tensor data written so far.</summary>
    public long TotalBytes => shards.Sum(s => s.DataBytes);

    public void Add(string name, DType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        if (data.Length != TensorInfo.ElementsOf(shape) * DTypes.Size(dtype))
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes for [{string.Join(", ", shape)}] of {dtype}", nameof(data));
        Begin(name, dtype, shape);
        Append(data);
        End();
    }

    /// <summary>Adds a float32 tensor stored as F32, F16 or BF16 (rounded to nearest even).</summary>
    public void AddFloat32(string name, long[] shape, ReadOnlySpan<float> data, DType storeAs = DType.F32)
    {
        if (data.Length != TensorInfo.ElementsOf(shape))
            throw new ArgumentException($"tensor '{name}': {data.Length} values for [{string.Join(", ", shape)}]", nameof(data));
        Begin(name, storeAs, shape);
        AppendFloat32(data);
        End();
    }

    /// <summary>Starts a tensor whose bytes follow in one or more <see cref="Append"/> calls; <see cref="End"/> checks they were all given.</summary>
    public void Begin(string name, DType dtype, long[] shape)
    {
        if (finished)
            throw new InvalidOperationException("the writer has finished");
        if (open is not null)
            throw new InvalidOperationException($"tensor '{open.Name}' is still open");
        if (shape.Any(d => d < 0))
            throw new ArgumentException($"tensor '{name}': negative dimension in [{string.Join(", ", shape)}]", nameof(shape));
        if (name == "__metadata__" || !names.Add(name))
            throw new ArgumentException($"tensor '{name}' was already added (or is a reserved name)", nameof(name));
        long bytes = checked(TensorInfo.ElementsOf(shape) * DTypes.Size(dtype));

        var entry = new Entry(name, dtype, (long[])shape.Clone(), 0, bytes);
        if (current is null || (current.Entries.Count > 0 && current.DataBytes + bytes > maxShardBytes)
            || (current.Handle is not null && current.HeaderBytes + EntryBytes(entry with { Begin = current.DataBytes }) + MetadataAllowance > current.Reservation))
            StartShard();
        var shard = current!;
        entry = entry with { Begin = shard.DataBytes };
        int entryBytes = EntryBytes(entry);
        if (shard.Handle is null && shard.DataBytes + bytes > StageLimit)
            shard.MoveToFile(Align8(Math.Max(MinReservation, 2 * (shard.HeaderBytes + entryBytes) + MetadataAllowance)));
        shard.Entries.Add(entry);
        shard.HeaderBytes += entryBytes + 1;
        shard.DataBytes += bytes;
        open = entry;
        openRemaining = bytes;
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        if (open is null)
            throw new InvalidOperationException("no tensor is open");
        if (data.Length > openRemaining)
            throw new ArgumentException($"tensor '{open.Name}': {data.Length} bytes given but only {openRemaining} remain", nameof(data));
        current!.Write(data);
        openRemaining -= data.Length;
    }

    /// <summary>Appends float32 values to the open tensor, converting them to its dtype (F32, F16 or BF16).</summary>
    public void AppendFloat32(ReadOnlySpan<float> data)
    {
        if (open is null)
            throw new InvalidOperationException("no tensor is open");
        if (open.DType == DType.F32)
        {
            Append(MemoryMarshal.AsBytes(data));
            return;
        }
        if (open.DType is not (DType.F16 or DType.BF16))
            throw new ArgumentException($"tensor '{open.Name}': float32 data cannot be stored as {open.DType} here");
        var scratch = ArrayPool<ushort>.Shared.Rent(Math.Min(data.Length, 1 << 16));
        try
        {
            for (int i = 0; i < data.Length; i += scratch.Length)
            {
                var part = data.Slice(i, Math.Min(scratch.Length, data.Length - i));
                var converted = scratch.AsSpan(0, part.Length);
                if (open.DType == DType.BF16)
                    BFloat16.FromFloat32(part, converted);
                else
                    Float16.FromFloat32(part, converted);
                Append(MemoryMarshal.AsBytes(converted));
            }
        }
        finally
        {
            ArrayPool<ushort>.Shared.Return(scratch);
        }
    }

    public void End()
    {
        if (open is null)
            throw new InvalidOperationException("no tensor is open");
        if (openRemaining != 0)
            throw new InvalidOperationException($"tensor '{open.Name}': {openRemaining} of {open.Bytes} bytes were never given");
        open = null;
    }

    /// <summary>Writes the headers (with "format": "pt" and <paramref name="metadata"/>), names the shards and writes the
    /// index when there are several. Returns the files written, relative to the directory.</summary>
    public IReadOnlyList<string> Finish(IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (finished)
            throw new InvalidOperationException("the writer has finished");
        if (open is not null)
            throw new InvalidOperationException($"tensor '{open.Name}' is still open");
        if (shards.Count == 0)
            StartShard();
        var meta = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            meta[key] = value;

        int n = shards.Count;
        var files = new List<string>();
        for (int i = 0; i < n; i++)
        {
            var name = n == 1 ? $"{prefix}.safetensors" : $"{prefix}-{i + 1:D5}-of-{n:D5}.safetensors";
            shards[i].Complete(Header(shards[i].Entries, meta));
            File.Move(shards[i].TempPath, Path.Combine(directory, name), overwrite: true);
            files.Add(name);
        }
        if (n > 1)
            WriteIndex(files);
        finished = true;
        return files;
    }

    void WriteIndex(List<string> files)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
            foreach (var entry in shards[i].Entries)
                map[entry.Name] = files[i];
        using var stream = File.Create(Path.Combine(directory, $"{prefix}.safetensors.index.json"));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", TotalBytes);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (tensor, file) in map)
            json.WriteString(tensor, file);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    void StartShard()
    {
        current?.CloseData();
        current = new Shard(StageLimit, Path.Combine(directory, $".{prefix}-{shards.Count + 1:D5}.safetensors.partial"));
        shards.Add(current);
    }

    static byte[] Header(List<Entry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            foreach (var (key, value) in metadata)
                json.WriteString(key, value);
            json.WriteEndObject();
            foreach (var entry in entries)
                WriteEntry(json, entry);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    static void WriteEntry(Utf8JsonWriter json, Entry entry)
    {
        json.WriteStartObject(entry.Name);
        json.WriteString("dtype", DTypes.Name(entry.DType));
        json.WriteStartArray("shape");
        foreach (var d in entry.Shape)
            json.WriteNumberValue(d);
        json.WriteEndArray();
        json.WriteStartArray("data_offsets");
        json.WriteNumberValue(entry.Begin);
        json.WriteNumberValue(entry.Begin + entry.Bytes);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    static int EntryBytes(Entry entry)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            WriteEntry(json, entry);
            json.WriteEndObject();
        }
        return buffer.WrittenCount - 2;
    }

    static long Align8(long n) => (n + 7) & ~7L;

    public void Dispose()
    {
        if (!finished)
            foreach (var shard in shards)
            {
                shard.Handle?.Dispose();
                File.Delete(shard.TempPath);
            }
        shards.Clear();
    }

    sealed record Entry(string Name, DType DType, long[] Shape, long Begin, long Bytes);

    /// <summary>One output file: staged in memory while small, then written in place after a reserved header region.</summary>
    sealed class Shard(int stageLimit, string tempPath)
    {
        public readonly string TempPath = tempPath;
        public readonly List<Entry> Entries = [];
        public long DataBytes;
        public long HeaderBytes = 2 + 64; // {} plus the usual metadata: {"format":"pt"}
        public SafeFileHandle? Handle;
        public long Reservation;

        byte[] stage = [];
        int staged;
        byte[]? buffer;
        int buffered;
        long flushedBytes;

        public void Write(ReadOnlySpan<byte> data)
        {
            if (Handle is null)
            {
                if (stage.Length < staged + data.Length)
                    Array.Resize(ref stage, (int)Math.Min(stageLimit, Math.Max(staged + data.Length, 2L * stage.Length + 4096)));
                data.CopyTo(stage.AsSpan(staged));
                staged += data.Length;
                return;
            }
            if (data.Length >= WriteBufferBytes)
            {
                Flush();
                RandomAccess.Write(Handle, data, 8 + Reservation + flushedBytes);
                flushedBytes += data.Length;
                return;
            }
            if (buffered + data.Length > WriteBufferBytes)
                Flush();
            data.CopyTo(buffer.AsSpan(buffered));
            buffered += data.Length;
        }

        public void MoveToFile(long reservation)
        {
            Handle = File.OpenHandle(TempPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
            Reservation = reservation;
            buffer = new byte[WriteBufferBytes];
            RandomAccess.Write(Handle, stage.AsSpan(0, staged), 8 + Reservation);
            flushedBytes = staged;
            stage = [];
            staged = 0;
        }

        void Flush()
        {
            if (buffered == 0)
                return;
            RandomAccess.Write(Handle!, buffer.AsSpan(0, buffered), 8 + Reservation + flushedBytes);
            flushedBytes += buffered;
            buffered = 0;
        }

        /// <summary>Ends the data: flushes what is buffered; the header comes at <see cref="Complete"/>.</summary>
        public void CloseData()
        {
            if (Handle is not null)
                Flush();
            buffer = null;
        }

        public void Complete(byte[] header)
        {
            CloseData();
            if (Handle is null)
            {
                using var file = File.OpenHandle(TempPath, FileMode.Create, FileAccess.Write, FileShare.None);
                var padded = Padded(header, Align8(8 + header.Length) - 8);
                RandomAccess.Write(file, padded, 0);
                RandomAccess.Write(file, stage.AsSpan(0, staged), padded.Length);
                stage = [];
                return;
            }
            if (header.Length > Reservation)
                ShiftData(Align8(header.Length + 8) - 8);
            RandomAccess.Write(Handle, Padded(header, Reservation), 0);
            Handle.Dispose();
            Handle = null;
        }

        // The length prefix, the JSON header, then spaces up to headerLength (the format allows trailing whitespace).
        static byte[] Padded(byte[] header, long headerLength)
        {
            var result = new byte[8 + headerLength];
            BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)headerLength);
            header.CopyTo(result, 8);
            result.AsSpan(8 + header.Length).Fill((byte)' ');
            return result;
        }

        // Rare: the metadata outgrew the reserved region. Moves the data up, last chunk first.
        void ShiftData(long reservation)
        {
            var chunk = new byte[WriteBufferBytes];
            for (long end = DataBytes; end > 0;)
            {
                int size = (int)Math.Min(chunk.Length, end);
                end -= size;
                RandomAccess.Read(Handle!, chunk.AsSpan(0, size), 8 + Reservation + end);
                RandomAccess.Write(Handle!, chunk.AsSpan(0, size), 8 + reservation + end);
            }
            Reservation = reservation;
        }
    }
}
