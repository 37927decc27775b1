using System.Text;

namespace Llmq.Formats.Gguf;

/// <summary>Per-column importance of each Linear's input — the mean of x² over the calibration tokens, keyed by the
/// GGUF weight name ("blk.0.attn_q.weight") — as llama-imatrix computes it and llama-quantize consumes it.
/// Reads and writes both llama.cpp file formats: the GGUF one (general.type "imatrix"; tensors NAME.in_sum2 holding
/// Σx² and NAME.counts holding the token count; metadata imatrix.datasets/chunk_count/chunk_size) and the legacy
/// .dat one (int32 entry count; per entry int32 name length, name, int32 ncall, int32 nval, nval floats = mean·ncall;
/// then int32 chunk count and int32-length dataset name).</summary>
public sealed class ImportanceMatrix
{
    readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>Σx² per column and the number of rows (tokens) summed.</summary>
    public sealed class Entry(int columns)
    {
        public double[] SumSquares { get; } = new double[columns];
        public long Count { get; set; }
    }

    public IReadOnlyList<string> Datasets { get; init; } = [];
    public int ChunkCount { get; set; }
    public int ChunkSize { get; set; }

    public IEnumerable<string> Names => _entries.Keys.Order(StringComparer.Ordinal);
    public int Count => _entries.Count;
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Accumulates rows × cols inputs of the Linear whose GGUF weight is <paramref name="name"/>.</summary>
    public void Accumulate(string name, ReadOnlySpan<float> input, int rows, int cols)
    {
        if (!_entries.TryGetValue(name, out var e))
            _entries[name] = e = new Entry(cols);
        if (e.SumSquares.Length != cols)
            throw new LlmqException($"imatrix entry '{name}' has {e.SumSquares.Length} columns, input has {cols}");
        var sums = e.SumSquares;
        for (int r = 0; r < rows; r++)
        {
            var x = input.Slice(r * cols, cols);
            for (int j = 0; j < cols; j++) sums[j] += (double)x[j] * x[j];
        }
        e.Count += rows;
    }

    /// <summary>Sets an entry from stored sums (used by the readers).</summary>
    public void Set(string name, ReadOnlySpan<float> sumSquares, long count)
    {
        var e = new Entry(sumSquares.Length) { Count = count };
        for (int j = 0; j < sumSquares.Length; j++) e.SumSquares[j] = sumSquares[j];
        _entries[name] = e;
    }

    /// <summary>The importance weights llama-quantize passes to the quantizer: Σx²/count (1 where nothing was seen), or null.</summary>
    public float[]? Weights(string name)
    {
        if (!_entries.TryGetValue(name, out var e)) return null;
        var w = new float[e.SumSquares.Length];
        for (int j = 0; j < w.Length; j++) w[j] = e.Count > 0 ? (float)e.SumSquares[j] / e.Count : 1f;
        return w;
    }

    /// <summary>Reads either format (GGUF when the file starts with the GGUF magic).</summary>
    public static ImportanceMatrix Load(string path)
    {
        if (!File.Exists(path)) throw new LlmqException($"{path}: no such imatrix file");
        using (var f = File.OpenRead(path))
        {
            Span<byte> magic = stackalloc byte[4];
            if (f.Read(magic) == 4 && BitConverter.ToUInt32(magic) == GgufReader.Magic)
                return LoadGguf(path);
        }
        return LoadLegacy(path);
    }

    static ImportanceMatrix LoadGguf(string path)
    {
        using var r = GgufReader.Open(path);
        if (r.GetString("general.type") is string type && type != "imatrix")
            throw new InvalidCheckpointException(path, null, $"general.type is '{type}', not 'imatrix'");
        var m = new ImportanceMatrix
        {
            Datasets = r.Metadata.TryGetValue("imatrix.datasets", out var ds) && ds.Value is string[] names ? names : [],
            ChunkCount = r.Metadata.TryGetValue("imatrix.chunk_count", out var cc) ? (int)cc.AsInt64() : 0,
            ChunkSize = r.Metadata.TryGetValue("imatrix.chunk_size", out var cs) ? (int)cs.AsInt64() : 0,
        };
        foreach (var t in r.Tensors)
        {
            if (!t.Name.EndsWith(".in_sum2", StringComparison.Ordinal)) continue;
            var name = t.Name[..^".in_sum2".Length];
            if (!r.Contains(name + ".counts"))
                throw new InvalidCheckpointException(path, t.Name, "no matching .counts tensor");
            if (t.Type != GgmlType.F32 || r.Info(name + ".counts").Type != GgmlType.F32)
                throw new InvalidCheckpointException(path, t.Name, "imatrix tensors must be F32");
            var counts = r.ReadFloat32(name + ".counts");
            if (counts.Length != 1 || t.Rows != 1)
                throw new InvalidCheckpointException(path, t.Name, "per-expert (3-D) imatrix entries are not supported");
            m.Set(name, r.ReadFloat32(t.Name), (long)counts[0]);
        }
        return m;
    }

    static ImportanceMatrix LoadLegacy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int pos = 0;
        int I32(string what)
        {
            if (bytes.Length - pos < 4) throw new InvalidCheckpointException(path, null, $"truncated reading {what}");
            int v = BitConverter.ToInt32(bytes, pos);
            pos += 4;
            return v;
        }
        string Str(int len, string what)
        {
            if (len < 0 || len > bytes.Length - pos) throw new InvalidCheckpointException(path, null, $"{what} length {len} runs past the end");
            var s = Encoding.UTF8.GetString(bytes, pos, len);
            pos += len;
            return s;
        }
        int n = I32("entry count");
        if (n < 1 || n > bytes.Length / 16) throw new InvalidCheckpointException(path, null, $"implausible entry count {n}");
        var entries = new List<(string Name, float[] Values, int Ncall)>();
        for (int i = 0; i < n; i++)
        {
            var name = Str(I32("name length"), "name");
            int ncall = I32("ncall"), nval = I32("nval");
            if (nval < 1 || nval > (bytes.Length - pos) / 4)
                throw new InvalidCheckpointException(path, name, $"{nval} values do not fit in the file");
            var values = new float[nval];
            Buffer.BlockCopy(bytes, pos, values, 0, nval * 4);
            pos += nval * 4;
            entries.Add((name, values, ncall));
        }
        int chunks = 0;
        var datasets = new List<string>();
        if (pos < bytes.Length)
        {
            chunks = I32("chunk count");
            datasets.Add(Str(I32("dataset length"), "dataset"));
        }
        var m = new ImportanceMatrix { Datasets = datasets, ChunkCount = chunks };
        foreach (var (name, values, ncall) in entries)
        {
            // llama-quantize divides the stored values by ncall (when positive): keep them as sums over ncall "rows"
            m.Set(name, values, ncall > 0 ? ncall : 1);
        }
        return m;
    }

    /// <summary>Writes the GGUF imatrix format (llama-imatrix's default since 2025).</summary>
    public void SaveGguf(string path)
    {
        using var w = new GgufWriter(path);
        w.Add("general.type", GgufValue.Str("imatrix"));
        w.Add("imatrix.datasets", GgufValue.Array(Datasets.ToArray()));
        w.Add("imatrix.chunk_count", GgufValue.U32((uint)ChunkCount));
        w.Add("imatrix.chunk_size", GgufValue.U32((uint)ChunkSize));
        foreach (var name in Names)
        {
            w.AddTensor(name + ".in_sum2", GgmlType.F32, [_entries[name].SumSquares.Length, 1]);
            w.AddTensor(name + ".counts", GgmlType.F32, [1, 1]);
        }
        w.WriteHeader();
        foreach (var name in Names)
        {
            var e = _entries[name];
            var sums = e.SumSquares.Select(v => (float)v).ToArray();
            w.WriteTensor(name + ".in_sum2", System.Runtime.InteropServices.MemoryMarshal.AsBytes(sums.AsSpan()));
            w.WriteTensor(name + ".counts", BitConverter.GetBytes((float)e.Count));
        }
        w.Finish();
    }

    /// <summary>Writes the legacy .dat format: each entry's mean times ncall, with ncall = ⌈count / chunk size⌉.</summary>
    public void SaveLegacy(string path)
    {
        using var f = new BinaryWriter(File.Create(path));
        f.Write(_entries.Count);
        int chunkSize = Math.Max(1, ChunkSize);
        foreach (var name in Names)
        {
            var e = _entries[name];
            var nameBytes = Encoding.UTF8.GetBytes(name);
            f.Write(nameBytes.Length);
            f.Write(nameBytes);
            int ncall = (int)((e.Count + chunkSize - 1) / chunkSize);
            f.Write(ncall);
            f.Write(e.SumSquares.Length);
            foreach (var s in e.SumSquares)
                f.Write(e.Count > 0 ? (float)s / e.Count * ncall : 1f * ncall);
        }
        f.Write(ChunkCount);
        var dataset = Encoding.UTF8.GetBytes(Datasets.Count > 0 ? Datasets[^1] : "");
        f.Write(dataset.Length);
        f.Write(dataset);
    }
}
