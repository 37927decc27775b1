using Llmq.Checkpoints;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// A compressed-tensors checkpoint seen as dense float weights: every quantized module's tensors (weight_packed,
/// weight_scale, …) appear as one <c>M.weight</c> [out, in], dequantized on demand; every other tensor passes through.
/// It is an <see cref="ITensorSource"/>, so the forward pass and the evaluator run on quantized checkpoints directly, and
/// <see cref="Decompressor"/> writes it out as a dense checkpoint.
/// </summary>
public sealed class CompressedCheckpoint : ITensorSource, IDisposable
{
    static readonly string[] Parameters =
        ["weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "weight_global_scale",
         "input_scale", "input_zero_point", "input_global_scale"];

    readonly Dictionary<string, (QuantizationScheme Scheme, ILinearCompressor Compressor)> modules = new(StringComparer.Ordinal);
    readonly Dictionary<string, TensorInfo> dense = new(StringComparer.Ordinal);

    public Checkpoint Checkpoint { get; }
    public ModelConfig Config { get; }
    /// <summary>The dense view's tensors in file order: quantized weights as F32 placeholders of their true shape.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }
    public IReadOnlyCollection<string> QuantizedModules => modules.Keys;

    CompressedCheckpoint(string dir)
    {
        Config = ModelConfig.Load(dir);
        var file = Path.Combine(dir, ModelConfig.FileName);
        var block = Config.QuantizationConfig ?? throw new LlmqException($"{dir}: config.json has no quantization_config; the model is not compressed");
        var (groups, ignore, _) = QuantizationConfig.Parse(block, file);
        var matcher = new ModuleMatcher(groups, ignore);
        Checkpoint = Checkpoint.Open(dir);
        try
        {
            foreach (var t in Checkpoint.Tensors)
            {
                if (!t.Name.EndsWith(".weight_scale", StringComparison.Ordinal)) continue;
                string module = t.Name[..^".weight_scale".Length];
                int g = matcher.GroupOf(module, ModuleMatcher.ClassOf(module, 2));
                if (g < 0 || groups[g].Weights is null)
                    throw new InvalidCheckpointException(t.File, t.Name, "has quantization parameters but no config group targets its module");
                var compressor = LinearCompressors.For(groups[g].ResolvedFormat);
                if (!compressor.IsPresent(Checkpoint, module))
                    throw new InvalidCheckpointException(t.File, module, $"is not stored as {compressor.Format}");
                modules[module] = (groups[g], compressor);
            }
            var list = new List<TensorInfo>();
            foreach (var t in Checkpoint.Tensors)
            {
                int dot = t.Name.LastIndexOf('.');
                string module = dot < 0 ? "" : t.Name[..dot], param = t.Name[(dot + 1)..];
                if (!modules.ContainsKey(module) || !(param == "weight" || Parameters.Contains(param))) { list.Add(t); continue; }   // biases pass
                if (param != "weight_scale") continue;   // one dense entry per module, at its scale's position
                var q = DenseShape(module);
                list.Add(new TensorInfo(module + ".weight", DType.F32, q, t.File, 0, 4 * q[0] * q[1]));
            }
            Tensors = list;
            foreach (var t in list) dense[t.Name] = t;
        }
        catch
        {
            Checkpoint.Dispose();
            throw;
        }
    }

    public static CompressedCheckpoint Open(string dir) => new(dir);

    long[] DenseShape(string module)
    {
        if (Checkpoint.Contains(module + ".weight_shape"))
            return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(Checkpoint.Bytes(module + ".weight_shape")).ToArray();
        if (Checkpoint.Contains(module + ".weight_packed"))
        {
            var s = Checkpoint.Shape(module + ".weight_packed");
            return [s[0], s[1] * 2];
        }
        return Checkpoint.Shape(module + ".weight");
    }

    public bool IsQuantized(string module) => modules.ContainsKey(module);

    /// <summary>The stored codes and qparams of a quantized module.</summary>
    public QuantizedLinear ReadQuantized(string module)
    {
        var (scheme, compressor) = modules.TryGetValue(module, out var m) ? m : throw new LlmqException($"{module} is not a quantized module");
        return compressor.Read(Checkpoint, module, scheme);
    }

    public bool Contains(string name) => dense.ContainsKey(name);

    public long[] Shape(string name) => dense.TryGetValue(name, out var t) ? t.Shape : throw new LlmqException($"{Checkpoint.Path}: no tensor named '{name}'");

    public void ReadFloat32(string name, Span<float> destination)
    {
        string module = name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : "";
        if (!modules.ContainsKey(module))
        {
            Checkpoint.ReadFloat32(name, destination);
            return;
        }
        var q = ReadQuantized(module);
        FakeQuant.Dequantize(q.Codes, q.QParams, q.Weights, destination);
    }

    public void Dispose() => Checkpoint.Dispose();
}
