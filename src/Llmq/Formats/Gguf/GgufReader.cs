using System.IO.MemoryMappedFiles;
using System.Text;

namespace Llmq.Formats.Gguf;

/// <summary>One tensor of a GGUF file. <see cref="Dimensions"/> are in ggml order (ne[0] first: the row length).</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dimensions, long ElementCount, long ByteLength, long FileOffset)
{
    /// <summary>Elements in one row (ne[0]).</summary>
    public long Columns => Dimensions.Length == 0 ? 1 : Dimensions[0];
    /// <summary>Number of rows (product of ne[1..]).</summary>
    public long Rows => Columns == 0 ? 0 : ElementCount / Columns;
    /// <summary>Shape in row-major (PyTorch / safetensors) order: ne reversed.</summary>
    public long[] Shape => Dimensions.Reverse().ToArray();
}

/// <summary>Reads a GGUF file (v2/v3; spec: ggml docs/gguf.md) through a read-only memory map. Every count, length,
/// string size, dimension and offset is checked against the file before it is trusted, so a truncated or hostile file
/// raises <see cref="InvalidCheckpointException"/> instead of allocating or reading past the end.</summary>
public sealed unsafe class GgufReader : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const uint DefaultAlignment = 32;
    const int MaxDimensions = 4;      // GGML_MAX_DIMS
    const int MaxArrayNesting = 8;

    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    readonly byte* _base;
    readonly Dictionary<string, GgufTensorInfo> _byName = new(StringComparer.Ordinal);
    readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);

    public string FilePath { get; }
    public long FileLength { get; }
    public uint Version { get; }
    public uint Alignment { get; } = DefaultAlignment;
    /// <summary>Absolute file offset of the tensor data section.</summary>
    public long DataOffset { get; }
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    GgufReader(string path)
    {
        FilePath = path;
        FileLength = new FileInfo(path).Length;
        if (FileLength < 24)
            throw Bad($"{FileLength} bytes is too short for a GGUF header");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;

            var c = new Cursor(this);
            if (c.U32("magic") != Magic)
                throw Bad("not a GGUF file (bad magic)");
            Version = c.U32("version");
            if (Version is not (2 or 3))
                throw Bad($"GGUF version {Version} is not supported (2 and 3 are)");
            long tensorCount = c.Count("tensor count", minBytesEach: 24);
            long kvCount = c.Count("metadata count", minBytesEach: 13);

            var keys = new List<string>((int)kvCount);
            for (long i = 0; i < kvCount; i++)
            {
                var key = c.String("metadata key");
                if (!_metadata.TryAdd(key, ReadValue(ref c, (GgufValueType)c.U32($"type of '{key}'"), key, 0)))
                    throw Bad($"duplicate metadata key '{key}'");
                keys.Add(key);
            }
            MetadataKeys = keys;

            if (_metadata.TryGetValue("general.alignment", out var align))
            {
                if (align.Type != GgufValueType.UInt32)
                    throw Bad($"general.alignment has type {align.Type}, expected UInt32");
                Alignment = (uint)align.Value;
                if (Alignment == 0 || (Alignment & (Alignment - 1)) != 0)
                    throw Bad($"general.alignment {Alignment} is not a power of two");
            }

            var raw = new List<(string Name, GgmlType Type, long[] Dims, long Elements, long Bytes, ulong Offset)>((int)tensorCount);
            for (long i = 0; i < tensorCount; i++)
            {
                var name = c.String("tensor name");
                uint nDims = c.U32($"dimension count of '{name}'");
                if (nDims > MaxDimensions)
                    throw Bad($"{nDims} dimensions (at most {MaxDimensions})", name);
                var dims = new long[nDims];
                long elements = 1;
                for (int d = 0; d < nDims; d++)
                {
                    ulong ne = c.U64($"dimension {d} of '{name}'");
                    if (ne > long.MaxValue || (ne != 0 && elements > long.MaxValue / (long)ne))
                        throw Bad($"dimension {d} = {ne} overflows the element count", name);
                    dims[d] = (long)ne;
                    elements *= (long)ne;
                }
                uint typeId = c.U32($"type of '{name}'");
                var type = (GgmlType)typeId;
                if (!GgmlTypes.IsKnown(type))
                    throw Bad($"unknown ggml type {typeId}", name);
                int block = GgmlTypes.BlockSize(type);
                long columns = nDims == 0 ? 1 : dims[0];
                if (columns % block != 0)
                    throw Bad($"row length {columns} is not a multiple of the {GgmlTypes.Name(type)} block size {block}", name);
                long rows = columns == 0 ? 0 : elements / columns;
                long rowBytes = columns / block * GgmlTypes.TypeSize(type);
                if (rows != 0 && rowBytes > long.MaxValue / rows)
                    throw Bad("byte size overflows", name);
                ulong offset = c.U64($"data offset of '{name}'");
                raw.Add((name, type, dims, elements, rows * rowBytes, offset));
            }

            DataOffset = Align(c.Position, Alignment);
            if (DataOffset > FileLength)
                throw Bad($"data section starts at {DataOffset}, past the end of the file ({FileLength} bytes)");
            long dataLength = FileLength - DataOffset;

            var tensors = new List<GgufTensorInfo>(raw.Count);
            foreach (var t in raw)
            {
                if (t.Offset % Alignment != 0)
                    throw Bad($"data offset {t.Offset} is not a multiple of the alignment {Alignment}", t.Name);
                if (t.Offset > (ulong)dataLength || t.Bytes > dataLength - (long)t.Offset)
                    throw Bad($"data [{t.Offset}, +{t.Bytes}) lies past the end of the data section ({dataLength} bytes)", t.Name);
                var info = new GgufTensorInfo(t.Name, t.Type, t.Dims, t.Elements, t.Bytes, DataOffset + (long)t.Offset);
                if (!_byName.TryAdd(t.Name, info))
                    throw Bad("duplicate tensor name", t.Name);
                tensors.Add(info);
            }
            var sorted = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.FileOffset).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i - 1].FileOffset + sorted[i - 1].ByteLength > sorted[i].FileOffset)
                    throw Bad($"data overlaps tensor '{sorted[i - 1].Name}'", sorted[i].Name);
            Tensors = tensors;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and validates a GGUF file.</summary>
    public static GgufReader Open(string path)
    {
        if (!File.Exists(path))
            throw new LlmqException($"{path}: no such GGUF file");
        return new GgufReader(path);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public GgufTensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var info) ? info : throw new LlmqException($"{FilePath}: no tensor named '{name}'");

    /// <summary>The tensor's stored bytes, zero copy.</summary>
    public ReadOnlySpan<byte> Bytes(string name) => Bytes(Info(name));

    public ReadOnlySpan<byte> Bytes(GgufTensorInfo info)
    {
        if (info.ByteLength > int.MaxValue)
            throw new LlmqException($"{FilePath}: tensor '{info.Name}' is {info.ByteLength} bytes; read it by rows");
        return new ReadOnlySpan<byte>(_base + info.FileOffset, (int)info.ByteLength);
    }

    /// <summary>Bytes of rows [firstRow, firstRow+rowCount) of a tensor.</summary>
    public ReadOnlySpan<byte> RowBytes(GgufTensorInfo info, long firstRow, int rowCount)
    {
        long rowBytes = GgmlTypes.RowSize(info.Type, info.Columns);
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > info.Rows)
            throw new ArgumentOutOfRangeException(nameof(firstRow));
        return new ReadOnlySpan<byte>(_base + info.FileOffset + firstRow * rowBytes, checked((int)(rowCount * rowBytes)));
    }

    /// <summary>Dequantizes a whole tensor into float32 (row-major, ne[0] fastest).</summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        var info = Info(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} floats, tensor '{name}' has {info.ElementCount}");
        if (!GgmlTypes.CanDequantize(info.Type))
            throw new LlmqException($"{FilePath}: tensor '{name}' has type {GgmlTypes.Name(info.Type)}, which Llmq cannot dequantize");
        GgmlQuants.DequantizeRows(info.Type, new ReadOnlySpan<byte>(_base + info.FileOffset, checked((int)info.ByteLength)),
            destination, checked((int)info.Columns));
    }

    public float[] ReadFloat32(string name)
    {
        var result = new float[Info(name).ElementCount];
        ReadFloat32(name, result);
        return result;
    }

    public string? GetString(string key) => _metadata.TryGetValue(key, out var v) && v.Type == GgufValueType.String ? (string)v.Value : null;

    public void Dispose()
    {
        if (_view is not null)
        {
            if (_base != null)
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }

    static long Align(long x, uint alignment) => (x + alignment - 1) / alignment * alignment;

    InvalidCheckpointException Bad(string problem, string? tensor = null) => new(FilePath, tensor, problem);

    GgufValue ReadValue(ref Cursor c, GgufValueType type, string key, int depth)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return GgufValue.U8(c.Bytes(1, key)[0]);
            case GgufValueType.Int8: return GgufValue.I8((sbyte)c.Bytes(1, key)[0]);
            case GgufValueType.UInt16: return GgufValue.U16(BitConverter.ToUInt16(c.Bytes(2, key)));
            case GgufValueType.Int16: return GgufValue.I16(BitConverter.ToInt16(c.Bytes(2, key)));
            case GgufValueType.UInt32: return GgufValue.U32(c.U32(key));
            case GgufValueType.Int32: return GgufValue.I32((int)c.U32(key));
            case GgufValueType.Float32: return GgufValue.F32(BitConverter.UInt32BitsToSingle(c.U32(key)));
            case GgufValueType.Bool: return GgufValue.Bool(c.Bytes(1, key)[0] != 0);
            case GgufValueType.String: return GgufValue.Str(c.String(key));
            case GgufValueType.UInt64: return GgufValue.U64(c.U64(key));
            case GgufValueType.Int64: return GgufValue.I64((long)c.U64(key));
            case GgufValueType.Float64: return GgufValue.F64(BitConverter.UInt64BitsToDouble(c.U64(key)));
            case GgufValueType.Array:
                if (depth >= MaxArrayNesting)
                    throw Bad($"metadata '{key}': arrays nested deeper than {MaxArrayNesting}");
                var elementType = (GgufValueType)c.U32(key);
                int size = ElementSize(elementType, key);
                long n = c.Count($"length of array '{key}'", size);
                return ReadArray(ref c, elementType, (int)n, key, depth);
            default:
                throw Bad($"metadata '{key}' has unknown value type {(uint)type}");
        }
    }

    /// <summary>Bytes per element, or the minimum for variable-size elements (string: its length; array: type + length).</summary>
    int ElementSize(GgufValueType t, string key) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => throw Bad($"metadata '{key}' has an array of unknown type {(uint)t}"),
    };

    GgufValue ReadArray(ref Cursor c, GgufValueType t, int n, string key, int depth)
    {
        switch (t)
        {
            case GgufValueType.String:
                var strings = new string[n];
                for (int i = 0; i < n; i++) strings[i] = c.String(key);
                return GgufValue.Array(strings);
            case GgufValueType.Array:
                var nested = new GgufValue[n];
                for (int i = 0; i < n; i++) nested[i] = ReadValue(ref c, GgufValueType.Array, key, depth + 1);
                return GgufValue.ArrayOfArrays(nested);
            case GgufValueType.Bool:
                var bools = new bool[n];
                var raw = c.Bytes(n, key);
                for (int i = 0; i < n; i++) bools[i] = raw[i] != 0;
                return GgufValue.Array(bools);
            default:
                int size = ElementSize(t, key);
                var bytes = c.Bytes(checked(n * size), key);
                System.Array array = t switch
                {
                    GgufValueType.UInt8 => new byte[n], GgufValueType.Int8 => new sbyte[n],
                    GgufValueType.UInt16 => new ushort[n], GgufValueType.Int16 => new short[n],
                    GgufValueType.UInt32 => new uint[n], GgufValueType.Int32 => new int[n], GgufValueType.Float32 => new float[n],
                    GgufValueType.UInt64 => new ulong[n], GgufValueType.Int64 => new long[n], _ => new double[n],
                };
                fixed (byte* dst = &System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(array))
                    bytes.CopyTo(new Span<byte>(dst, bytes.Length));
                return GgufValue.RawArray(t, array);
        }
    }

    /// <summary>Bounds-checked little-endian reader over the mapped header.</summary>
    ref struct Cursor(GgufReader owner)
    {
        public long Position;

        public ReadOnlySpan<byte> Bytes(int n, string what)
        {
            if (n < 0 || n > owner.FileLength - Position)
                throw owner.Bad($"truncated: {what} needs {n} bytes at offset {Position}, the file has {owner.FileLength}");
            var span = new ReadOnlySpan<byte>(owner._base + Position, n);
            Position += n;
            return span;
        }

        public uint U32(string what) => BitConverter.ToUInt32(Bytes(4, what));
        public ulong U64(string what) => BitConverter.ToUInt64(Bytes(8, what));

        /// <summary>A count of items each at least minBytesEach long, refused when the rest of the file cannot hold them.</summary>
        public long Count(string what, int minBytesEach)
        {
            ulong n = U64(what);
            ulong room = (ulong)(owner.FileLength - Position) / (ulong)minBytesEach;
            if (n > room || n > int.MaxValue)
                throw owner.Bad($"{what} {n} cannot fit in the {owner.FileLength - Position} bytes left");
            return (long)n;
        }

        public string String(string what)
        {
            ulong len = U64(what);
            if (len > (ulong)(owner.FileLength - Position) || len > int.MaxValue)
                throw owner.Bad($"truncated: {what} claims {len} bytes at offset {Position}, the file has {owner.FileLength}");
            return Encoding.UTF8.GetString(Bytes((int)len, what));
        }
    }
}
