using System.Runtime.CompilerServices;
using System.Text.Json;
using Llmq.Numerics;

namespace Llmq.Checkpoints;

/// <summary>The weights of a model: one .safetensors file, or the shards a model.safetensors.index.json names, all
/// memory-mapped. Tensors are read zero-copy as bytes or converted to float32. Shard names in an index must stay inside
/// the model directory: no absolute paths, no "..", no symbolic links that lead out.</summary>
public sealed unsafe class Checkpoint : ITensorSource, IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";

    readonly Dictionary<string, (SafetensorsFile File, TensorInfo Info)> tensors;

    /// <summary>The directory or file it was opened from.</summary>
    public string Path { get; }
    /// <summary>The directory holding the files (the model directory).</summary>
    public string Directory { get; }
    /// <summary>The index file, when the checkpoint is sharded.</summary>
    public string? IndexFile { get; }
    public IReadOnlyList<SafetensorsFile> Files { get; }
    /// <summary>Every tensor, file by file in data order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    Checkpoint(string path, string directory, string? indexFile, List<SafetensorsFile> files, Func<TensorInfo, bool> include)
    {
        Path = path;
        Directory = directory;
        IndexFile = indexFile;
        Files = files;
        tensors = [];
        var list = new List<TensorInfo>();
        foreach (var file in files)
            foreach (var info in file.Tensors)
            {
                if (!include(info))
                    continue;
                if (!tensors.TryAdd(info.Name, (file, info)))
                    throw new InvalidCheckpointException(file.Path, info.Name, $"also present in {tensors[info.Name].File.Path}");
                list.Add(info);
            }
        Tensors = list;
    }

    /// <summary>Opens a model directory (index + shards, model.safetensors, or its .safetensors files), a .safetensors file,
    /// or an index file.</summary>
    public static Checkpoint Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (File.Exists(full))
        {
            var dir = System.IO.Path.GetDirectoryName(full)!;
            return full.EndsWith(".index.json", StringComparison.Ordinal) ? OpenIndex(full, dir, full) : OpenFiles(full, dir, [full]);
        }
        if (!System.IO.Directory.Exists(full))
            throw new LlmqException($"{path}: no such file or directory");
        var index = System.IO.Path.Combine(full, IndexFileName);
        if (File.Exists(index))
            return OpenIndex(full, full, index);
        var single = System.IO.Path.Combine(full, "model.safetensors");
        if (File.Exists(single))
            return OpenFiles(full, full, [single]);
        var all = System.IO.Directory.GetFiles(full, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (all.Count == 0)
            throw new LlmqException($"{path}: not a model: no .safetensors files and no {IndexFileName}");
        return OpenFiles(full, full, all);
    }

    static Checkpoint OpenFiles(string path, string dir, List<string> names)
    {
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var name in names)
                files.Add(SafetensorsFile.Open(name));
            return new Checkpoint(path, dir, null, files, _ => true);
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }
    }

    static Checkpoint OpenIndex(string path, string dir, string index)
    {
        var weightMap = ReadWeightMap(index);
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            string realDir = RealPath(dir);
            foreach (var (tensor, shard) in weightMap)
            {
                if (shards.ContainsKey(shard))
                    continue;
                var shardPath = ResolveShard(index, dir, realDir, tensor, shard);
                shards[shard] = SafetensorsFile.Open(shardPath);
            }
            foreach (var (tensor, shard) in weightMap)
                if (!shards[shard].Contains(tensor))
                    throw new InvalidCheckpointException(index, tensor, $"mapped to {shard}, which does not hold it");
            return new Checkpoint(path, dir, index, shards.Values.ToList(),
                info => weightMap.TryGetValue(info.Name, out var s) && shards[s].Path == info.File);
        }
        catch
        {
            foreach (var file in shards.Values)
                file.Dispose();
            throw;
        }
    }

    static Dictionary<string, string> ReadWeightMap(string index)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(index));
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidCheckpointException(index, null, "no weight_map object");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new InvalidCheckpointException(index, entry.Name, "weight_map value is not a file name");
                if (!result.TryAdd(entry.Name, entry.Value.GetString()!))
                    throw new InvalidCheckpointException(index, entry.Name, "appears twice in weight_map");
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new InvalidCheckpointException(index, null, $"not well-formed JSON: {e.Message}");
        }
    }

    /// <summary>The full path of a shard named in the index, refused unless it stays inside the model directory.</summary>
    static string ResolveShard(string index, string dir, string realDir, string tensor, string shard)
    {
        if (shard.Length == 0 || System.IO.Path.IsPathRooted(shard) || shard.StartsWith('/') || shard.StartsWith('\\'))
            throw new InvalidCheckpointException(index, tensor, $"shard '{shard}' is not a relative file name");
        if (shard.Split('/', '\\').Any(part => part == ".."))
            throw new InvalidCheckpointException(index, tensor, $"shard '{shard}' climbs out of the model directory");
        var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, shard));
        if (!IsInside(RealPath(full), realDir))
            throw new InvalidCheckpointException(index, tensor, $"shard '{shard}' is a link that leads out of the model directory");
        if (!File.Exists(full))
            throw new InvalidCheckpointException(index, tensor, $"shard '{shard}' does not exist");
        return full;
    }

    static bool IsInside(string path, string dir) =>
        path.StartsWith(dir.EndsWith(System.IO.Path.DirectorySeparatorChar) ? dir : dir + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The path with every symbolic link along it resolved, component by component.</summary>
    internal static string RealPath(string path, int depth = 0)
    {
        if (depth > 40)
            throw new LlmqException($"{path}: too many levels of symbolic links");
        var full = System.IO.Path.GetFullPath(path);
        var root = System.IO.Path.GetPathRoot(full)!;
        var current = root;
        foreach (var part in full[root.Length..].Split(System.IO.Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = System.IO.Path.Combine(current, part);
            var target = new FileInfo(next).LinkTarget;
            current = target is null ? next : RealPath(System.IO.Path.Combine(current, target), depth + 1);
        }
        return current;
    }

    public bool Contains(string name) => tensors.ContainsKey(name);

    public TensorInfo Info(string name) => Lookup(name).Info;

    public long[] Shape(string name) => Lookup(name).Info.Shape;

    /// <summary>The tensor's bytes, zero copy (valid until Dispose).</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        var (file, _) = Lookup(name);
        return file.Bytes(name);
    }

    public float[] ReadFloat32(string name)
    {
        var info = Info(name);
        if (info.ElementCount > Array.MaxLength)
            throw new LlmqException($"{info.File}: tensor '{name}' has {info.ElementCount} elements, too many for one array");
        var result = GC.AllocateUninitializedArray<float>((int)info.ElementCount);
        ReadFloat32(name, result);
        return result;
    }

    /// <summary>Converts the tensor (F32, F16, BF16 or F64) to float32 into <paramref name="destination"/>, whose length
    /// must be its element count. Large tensors convert in parallel.</summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        var info = Info(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"tensor '{name}' has {info.ElementCount} elements, destination {destination.Length}", nameof(destination));
        ReadFloat32(name, 0, destination);
    }

    /// <summary>Converts elements [<paramref name="first"/>, first + destination.Length) of the tensor (in row-major
    /// order) to float32: a large tensor streamed a block of rows at a time.</summary>
    public void ReadFloat32(string name, long first, Span<float> destination)
    {
        var (file, info) = Lookup(name);
        if (first < 0 || first + destination.Length > info.ElementCount)
            throw new ArgumentException($"tensor '{name}' has {info.ElementCount} elements, elements [{first}, {first + destination.Length}) asked for", nameof(destination));
        if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
            throw new LlmqException($"{info.File}: tensor '{name}' is {info.DType}, which does not convert to float32 directly");
        byte* source = file.Pointer(info) + first * DTypes.Size(info.DType);
        fixed (float* target = destination)
        {
            const int chunk = 1 << 20;
            long n = destination.Length;
            if (n <= 2 * chunk)
            {
                Convert(info.DType, source, target, (int)n);
                return;
            }
            nint s = (nint)source, t = (nint)target;
            int size = DTypes.Size(info.DType);
            Parallel.For(0, (int)((n + chunk - 1) / chunk), c =>
            {
                long begin = (long)c * chunk;
                Convert(info.DType, (byte*)s + begin * size, (float*)t + begin, (int)Math.Min(chunk, n - begin));
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // every weight read passes here: no slow first tier
    static void Convert(DType dtype, byte* source, float* target, int count)
    {
        var dst = new Span<float>(target, count);
        switch (dtype)
        {
            case DType.F32:
                new ReadOnlySpan<float>(source, count).CopyTo(dst);
                break;
            case DType.BF16:
                BFloat16.ToFloat32(new ReadOnlySpan<ushort>(source, count), dst);
                break;
            case DType.F16:
                Float16.ToFloat32(new ReadOnlySpan<ushort>(source, count), dst);
                break;
            case DType.F64:
                var doubles = new ReadOnlySpan<double>(source, count);
                for (int i = 0; i < count; i++)
                    dst[i] = (float)doubles[i];
                break;
        }
    }

    (SafetensorsFile File, TensorInfo Info) Lookup(string name) =>
        tensors.TryGetValue(name, out var entry) ? entry : throw new LlmqException($"{Path}: no tensor named '{name}'");

    public void Dispose()
    {
        foreach (var file in Files)
            file.Dispose();
    }
}
