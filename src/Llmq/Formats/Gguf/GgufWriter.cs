using System.Buffers.Binary;
using System.Text;

namespace Llmq.Formats.Gguf;

/// <summary>Writes a GGUF v3 file as a stream: declare metadata and every tensor (name, type, ggml-order dimensions),
/// call <see cref="WriteHeader"/>, then hand over each tensor's bytes in declaration order (in one piece or in chunks).
/// Tensor data is laid out back to back, each padded to the alignment, which is what llama.cpp's loader requires.</summary>
public sealed class GgufWriter : IDisposable
{
    /// <summary>ggml's GGML_MAX_NAME: tensor names must be shorter than this for llama.cpp to load them.</summary>
    public const int MaxTensorName = 64;

    readonly Stream _stream;
    readonly bool _ownsStream;
    readonly uint _alignment;
    readonly List<(string Key, GgufValue Value)> _metadata = [];
    readonly List<(string Name, GgmlType Type, long[] Dims, long Bytes)> _tensors = [];
    readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    readonly HashSet<string> _names = new(StringComparer.Ordinal);
    bool _headerWritten;
    int _current;          // tensor being written
    long _currentWritten;  // bytes of it written so far

    public GgufWriter(Stream stream, uint alignment = GgufReader.DefaultAlignment, bool ownsStream = false)
    {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentException($"alignment {alignment} is not a power of two", nameof(alignment));
        _stream = stream;
        _ownsStream = ownsStream;
        _alignment = alignment;
        if (alignment != GgufReader.DefaultAlignment)
            Add("general.alignment", GgufValue.U32(alignment));
    }

    public GgufWriter(string path, uint alignment = GgufReader.DefaultAlignment)
        : this(new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20), alignment, ownsStream: true) { }

    public IReadOnlyList<(string Key, GgufValue Value)> Metadata => _metadata;

    public void Add(string key, GgufValue value)
    {
        if (_headerWritten) throw new InvalidOperationException("header already written");
        if (!_keys.Add(key)) throw new ArgumentException($"metadata key '{key}' added twice");
        _metadata.Add((key, value));
    }

    /// <summary>Declares a tensor. <paramref name="dimensions"/> are in ggml order: ne[0] (the row length) first.</summary>
    public void AddTensor(string name, GgmlType type, ReadOnlySpan<long> dimensions)
    {
        if (_headerWritten) throw new InvalidOperationException("header already written");
        if (Encoding.UTF8.GetByteCount(name) >= MaxTensorName)
            throw new LlmqException($"tensor name '{name}' is too long for llama.cpp (at most {MaxTensorName - 1} bytes)");
        if (_names.Contains(name)) throw new ArgumentException($"tensor '{name}' added twice");
        if (dimensions.Length is < 1 or > 4) throw new ArgumentException("a ggml tensor has 1 to 4 dimensions");
        long elements = 1;
        foreach (var d in dimensions) elements = checked(elements * d);
        if (dimensions[0] % GgmlTypes.BlockSize(type) != 0)
            throw new LlmqException($"tensor '{name}': row length {dimensions[0]} is not a multiple of the {GgmlTypes.Name(type)} block size");
        long bytes = GgmlTypes.RowSize(type, dimensions[0]) * (elements / Math.Max(1, dimensions[0]));
        _names.Add(name);
        _tensors.Add((name, type, dimensions.ToArray(), bytes));
    }

    /// <summary>Bytes a declared tensor takes.</summary>
    public long TensorBytes(string name) => _tensors.First(t => t.Name == name).Bytes;

    public void WriteHeader()
    {
        if (_headerWritten) throw new InvalidOperationException("header already written");
        _headerWritten = true;
        var w = new BufferedWriter(_stream);
        w.U32(GgufReader.Magic);
        w.U32(3);
        w.U64((ulong)_tensors.Count);
        w.U64((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            w.Str(key);
            w.U32((uint)value.Type);
            WriteValue(w, value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            w.Str(t.Name);
            w.U32((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.U64((ulong)d);
            w.U32((uint)t.Type);
            w.U64((ulong)offset);
            offset += Pad(t.Bytes);
        }
        w.Zeros((int)(Pad(w.Written) - w.Written));
        w.Flush();
        SkipEmptyTensors();
    }

    /// <summary>Writes the next declared tensor's bytes in full; its name must match the declaration order.</summary>
    public void WriteTensor(string name, ReadOnlySpan<byte> data)
    {
        if (_current >= _tensors.Count || _tensors[_current].Name != name)
            throw new InvalidOperationException($"tensor '{name}' written out of order (expected '{(_current < _tensors.Count ? _tensors[_current].Name : "none")}')");
        if (_currentWritten != 0 || data.Length != _tensors[_current].Bytes)
            throw new ArgumentException($"tensor '{name}' takes {_tensors[_current].Bytes} bytes, got {data.Length}");
        Write(data);
    }

    /// <summary>Appends bytes of the current tensor; pads and moves on when the tensor is complete.</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (!_headerWritten) throw new InvalidOperationException("write the header first");
        Span<byte> zeros = stackalloc byte[64];
        zeros.Clear();
        while (!data.IsEmpty)
        {
            if (_current >= _tensors.Count) throw new InvalidOperationException("more tensor data than declared");
            long left = _tensors[_current].Bytes - _currentWritten;
            int n = (int)Math.Min(left, data.Length);
            _stream.Write(data[..n]);
            data = data[n..];
            _currentWritten += n;
            if (_currentWritten == _tensors[_current].Bytes)
            {
                var padding = (int)(Pad(_currentWritten) - _currentWritten);
                while (padding > 0) { int k = Math.Min(padding, 64); _stream.Write(zeros[..k]); padding -= k; }
                _current++;
                _currentWritten = 0;
                SkipEmptyTensors();
            }
        }
    }

    /// <summary>Checks that every declared tensor was written and flushes.</summary>
    public void Finish()
    {
        if (!_headerWritten) WriteHeader();
        if (_current != _tensors.Count)
            throw new InvalidOperationException($"tensor '{_tensors[_current].Name}' was declared but not written");
        _stream.Flush();
    }

    public void Dispose()
    {
        if (_ownsStream) _stream.Dispose();
    }

    void SkipEmptyTensors()
    {
        while (_current < _tensors.Count && _tensors[_current].Bytes == 0) _current++;
    }

    long Pad(long x) => (x + _alignment - 1) / _alignment * _alignment;

    static void WriteValue(BufferedWriter w, GgufValue v)
    {
        switch (v.Value)
        {
            case byte x: w.Bytes([x]); break;
            case sbyte x: w.Bytes([(byte)x]); break;
            case ushort x: w.U16(x); break;
            case short x: w.U16((ushort)x); break;
            case uint x: w.U32(x); break;
            case int x: w.U32((uint)x); break;
            case float x: w.U32(BitConverter.SingleToUInt32Bits(x)); break;
            case bool x: w.Bytes([x ? (byte)1 : (byte)0]); break;
            case string x: w.Str(x); break;
            case ulong x: w.U64(x); break;
            case long x: w.U64((ulong)x); break;
            case double x: w.U64(BitConverter.DoubleToUInt64Bits(x)); break;
            case Array array:
                w.U32((uint)v.ElementType);
                w.U64((ulong)array.Length);
                foreach (var item in array)
                {
                    if (item is GgufValue nested) WriteValue(w, nested);
                    else WriteValue(w, GgufValue.Scalar(v.ElementType, item));
                }
                break;
            default: throw new ArgumentException($"cannot write metadata value {v.Value.GetType()}");
        }
    }

    /// <summary>Little-endian header writer that counts what it wrote.</summary>
    sealed class BufferedWriter(Stream stream)
    {
        readonly MemoryStream _buffer = new();
        public long Written => _buffer.Length;
        public void Bytes(ReadOnlySpan<byte> b) => _buffer.Write(b);
        public void U16(ushort x) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, x); Bytes(b); }
        public void U32(uint x) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, x); Bytes(b); }
        public void U64(ulong x) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, x); Bytes(b); }
        public void Str(string s) { var b = Encoding.UTF8.GetBytes(s); U64((ulong)b.Length); Bytes(b); }
        public void Zeros(int n) { for (int i = 0; i < n; i++) _buffer.WriteByte(0); }
        public void Flush() { _buffer.Position = 0; _buffer.CopyTo(stream); }
    }
}
