using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;

namespace Llmq.Quantization;

/// <summary>Settings of a round-to-nearest quantization run (llm-compressor's <c>QuantizationModifier</c> with a preset).</summary>
public sealed record QuantizeOptions
{
    /// <summary>A preset name (<see cref="SchemePresets"/>), used with <see cref="Targets"/>.</summary>
    public required string Scheme { get; init; }
    public IReadOnlyList<string> Targets { get; init; } = ["Linear"];
    /// <summary>Extra ignore entries (names, <c>re:</c> regexes, class names). They add to <see cref="DefaultIgnore"/>.</summary>
    public IReadOnlyList<string> Ignore { get; init; } = [];
    /// <summary>Ignore <c>lm_head</c> (what every llm-compressor example does). Set false to quantize it too.</summary>
    public bool DefaultIgnore { get; init; } = true;
    /// <summary>Replaces the weight observer ("mse" for the MSE grid search), recorded in the config as llm-compressor does.</summary>
    public string? WeightObserver { get; init; }
    public bool Overwrite { get; init; }
    public long MaxShardBytes { get; init; } = SafetensorsWriter.DefaultMaxShardBytes;
    /// <summary>Calibrated input ranges per module, required by schemes with static or "local" input scales (FP8, NVFP4).</summary>
    public IReadOnlyDictionary<string, ActivationRange>? InputRanges { get; init; }

    public static readonly IReadOnlyList<string> DefaultIgnoreEntries = ["lm_head"];

    /// <summary>The ignore list in effect: the defaults (unless turned off) followed by the user's entries.</summary>
    public IReadOnlyList<string> EffectiveIgnore => (DefaultIgnore ? DefaultIgnoreEntries : []).Concat(Ignore).Distinct().ToList();

    /// <summary>The config group this run applies.</summary>
    public QuantizationScheme ResolveScheme()
    {
        var scheme = SchemePresets.Get(Scheme, Targets);
        return WeightObserver is null ? scheme : scheme with { Weights = scheme.Weights! with { Observer = WeightObserver } };
    }
}

public readonly record struct QuantizeProgress(int Done, int Total, string Tensor);

public sealed record QuantizeResult(string OutputPath, int QuantizedModules, IReadOnlyList<string> Ignored, long InputBytes, long OutputBytes, TimeSpan Elapsed);

/// <summary>
/// Round-to-nearest quantization of a whole checkpoint into compressed-tensors, streaming:
/// plan and check (<see cref="QuantizationPlan"/>) → NVFP4 global scales from the absolute maxima of each fused set →
/// for each tensor in file order: a quantized Linear's weight is read as float32, observed, quantized and written in its
/// format; everything else is copied byte for byte → config.json with quantization_config, recipe.yaml, tokenizer files →
/// the temporary output directory is renamed into place. Peak memory is about one weight in float32 plus its codes and
/// packed form; each tensor's input pages are released once it is written.
/// </summary>
public static class Quantizer
{
    public static QuantizeResult QuantizeModel(string modelDir, string outputDir, QuantizeOptions options,
        IProgress<QuantizeProgress>? progress = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        var config = ModelConfig.Load(modelDir);
        using var checkpoint = Checkpoint.Open(modelDir);
        var plan = QuantizationPlan.Create(checkpoint.Tensors, config, [options.ResolveScheme()], options.EffectiveIgnore);
        foreach (var (module, g) in plan.Modules)
            if (plan.Groups[g].NeedsActivationStatistics && options.InputRanges?.ContainsKey(module) != true)
                throw new LlmqException($"scheme {options.Scheme} stores static input scales, which need calibration data (no input range for {module}); " +
                    "use llmq oneshot with a dataset, or a dynamic scheme such as FP8_DYNAMIC or NVFP4A16");
        var globalScales = new GlobalScales(checkpoint, plan);

        using var output = OutputDirectory.Create(outputDir, options.Overwrite);
        long written;
        using (var writer = new SafetensorsWriter(output.Path, options.MaxShardBytes))
        {
            long largest = plan.Modules.Keys.Select(m => checkpoint.Info(m + ".weight").ElementCount).DefaultIfEmpty(0).Max();
            var buffer = GC.AllocateUninitializedArray<float>((int)largest);
            int done = 0, total = checkpoint.Tensors.Count;
            var readAhead = new ReadAhead(checkpoint);
            foreach (var tensor in checkpoint.Tensors)
            {
                cancellation.ThrowIfCancellationRequested();
                readAhead.Advance(done);
                string module = tensor.Name.EndsWith(".weight", StringComparison.Ordinal) ? tensor.Name[..^".weight".Length] : "";
                if (plan.Modules.TryGetValue(module, out int g))
                {
                    var scheme = plan.Groups[g];
                    var weight = buffer.AsSpan(0, (int)tensor.ElementCount);
                    PageRelease.Populate(checkpoint, tensor);
                    checkpoint.ReadFloat32(tensor.Name, weight);
                    int rows = (int)tensor.Shape[0], cols = (int)tensor.Shape[1];
                    var precision = LinearCompressors.Precision(tensor.DType);
                    var qp = Observers.ForWeights(scheme.Weights!).Compute(weight, rows, cols, scheme.Weights!, precision, globalScales.For(module));
                    ActivationRange? input = options.InputRanges?.TryGetValue(module, out var r) == true ? r : null;
                    LinearCompressors.WriteLinear(writer, module, scheme, weight, qp, tensor.DType, input);
                    ReusableArrays<float>.Return(qp.Scale);   // written; the qparams go no further
                }
                else
                {
                    PageRelease.Populate(checkpoint, tensor);
                    writer.Add(tensor.Name, tensor.DType, tensor.Shape, checkpoint.Bytes(tensor.Name));
                }
                PageRelease.Release(checkpoint, tensor);
                progress?.Report(new QuantizeProgress(++done, total, tensor.Name));
            }
            writer.Finish(new Dictionary<string, string>());
            written = writer.TotalBytes;
        }
        WriteModelFiles(modelDir, output.Path, config, plan.QuantizationConfigJson(),
            RecipeYaml.ForQuantizationModifier(options.Targets, options.EffectiveIgnore, options.Scheme));
        output.Publish();
        return new QuantizeResult(output.FinalPath, plan.Modules.Count, plan.Ignored, checkpoint.Tensors.Sum(t => t.ByteLength), written, clock.Elapsed);
    }

    /// <summary>config.json (with <paramref name="quantizationConfig"/> merged in), recipe.yaml (kept beside an existing one),
    /// tokenizer / generation files and custom code copied from the source model.</summary>
    public static void WriteModelFiles(string sourceDir, string destDir, ModelConfig config, JsonObject quantizationConfig, string recipe)
    {
        File.WriteAllText(Path.Combine(destDir, ModelConfig.FileName), QuantizationConfig.MergeIntoConfig(config.Json, quantizationConfig));
        var oldRecipe = Path.Combine(sourceDir, RecipeYaml.FileName);
        File.WriteAllText(Path.Combine(destDir, RecipeYaml.FileName), File.Exists(oldRecipe) ? RecipeYaml.Combine(File.ReadAllText(oldRecipe), recipe) : recipe);
        ModelFiles.CopyAuxiliary(sourceDir, destDir);
        foreach (var py in Directory.EnumerateFiles(sourceDir, "*.py"))
            File.Copy(py, Path.Combine(destDir, Path.GetFileName(py)), overwrite: true);
    }

    /// <summary>
    /// Global scales of the tensor_group modules, shared across each complete fused set (see <see cref="FusedLayers"/>),
    /// computed when a set's first member is quantized: a set's members lie side by side in the file, so the amax pass
    /// reads pages that the quantization of the set then finds in memory, and a model that is not in the page cache is
    /// read from disk once, not twice.
    /// </summary>
    sealed class GlobalScales
    {
        readonly Checkpoint checkpoint;
        readonly Dictionary<string, string[]> setOf = new(StringComparer.Ordinal);
        readonly Dictionary<string, float> scales = new(StringComparer.Ordinal);

        public GlobalScales(Checkpoint checkpoint, QuantizationPlan plan)
        {
            this.checkpoint = checkpoint;
            var modules = plan.Modules.Where(p => plan.Groups[p.Value].Weights!.HasGlobalScale).Select(p => p.Key).ToList();
            foreach (var m in modules) setOf[m] = [m];
            foreach (var set in FusedLayers.FindSets(modules))   // only tensor_group modules take part, so only all-NVFP4 sets share
                foreach (var m in set) setOf[m] = set;
        }

        public float? For(string module)
        {
            if (!setOf.TryGetValue(module, out var set)) return null;
            if (!scales.ContainsKey(module))
                foreach (var (m, g) in FusedLayers.GlobalScales(set.ToDictionary(m => m, m => AbsMax(checkpoint, m + ".weight"))))
                    scales[m] = g;
            return scales[module];
        }
    }

    /// <summary>Asks the kernel for the tensors ahead of the one being quantized (<see cref="PageRelease.Prefetch"/>), a
    /// window of <see cref="WindowBytes"/> past its end, so that reading from disk overlaps the work on earlier tensors.</summary>
    sealed class ReadAhead
    {
        const long WindowBytes = 128L << 20;
        readonly Checkpoint checkpoint;
        readonly long[] offsets;   // bytes of the tensors before each one, in processing order
        int next;

        public ReadAhead(Checkpoint checkpoint)
        {
            this.checkpoint = checkpoint;
            offsets = new long[checkpoint.Tensors.Count + 1];
            for (int i = 0; i < checkpoint.Tensors.Count; i++) offsets[i + 1] = offsets[i] + checkpoint.Tensors[i].ByteLength;
        }

        /// <summary>Called before tensor <paramref name="current"/> (in <see cref="Checkpoint.Tensors"/> order) is used.</summary>
        public void Advance(int current)
        {
            for (; next < checkpoint.Tensors.Count && (next <= current || offsets[next] < offsets[current + 1] + WindowBytes); next++)
                PageRelease.Prefetch(checkpoint, checkpoint.Tensors[next]);
        }
    }

    /// <summary>Largest low-15-bit value of bf16 bits (|x| of non-NaN bf16 values orders like these), vectorized.</summary>
    static short BFloat16AbsMaxBits(ReadOnlySpan<short> bits)
    {
        int i = 0;
        short m = 0;
        if (Vector256.IsHardwareAccelerated && bits.Length >= 16)
        {
            var acc = Vector256<short>.Zero;
            var mask = Vector256.Create((short)0x7FFF);
            for (; i + 16 <= bits.Length; i += 16)
                acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(bits), (nuint)i) & mask);
            m = MaxLane(acc);
        }
        for (; i < bits.Length; i++) m = Math.Max(m, (short)(bits[i] & 0x7FFF));
        return m;
    }

    static short MaxLane(Vector256<short> v)
    {
        short m = 0;
        for (int k = 0; k < 16; k++) m = Math.Max(m, v.GetElement(k));
        return m;
    }

    /// <summary>max |w| of a float tensor; BF16 directly on the bits (|x| orders like its low 15 bits).</summary>
    static float AbsMax(Checkpoint checkpoint, string name)
    {
        var info = checkpoint.Info(name);
        PageRelease.Populate(checkpoint, info);
        if (info.DType == DType.BF16)
        {
            var bits = MemoryMarshal.Cast<byte, short>(checkpoint.Bytes(name));
            short max = 0;
            const int chunk = 1 << 20;
            var partial = new short[(bits.Length + chunk - 1) / chunk];
            unsafe
            {
                fixed (short* p = bits)
                {
                    short* bp = p;
                    int n = bits.Length;
                    Parallel.For(0, partial.Length, c =>
                    {
                        var part = new ReadOnlySpan<short>(bp + (long)c * chunk, Math.Min(chunk, n - c * chunk));
                        partial[c] = BFloat16AbsMaxBits(part);
                    });
                }
            }
            foreach (var m in partial) max = Math.Max(max, m);
            return BitConverter.UInt32BitsToSingle((uint)max << 16);
        }
        var values = checkpoint.ReadFloat32(name);
        return MathF.Abs(TensorPrimitives.MaxMagnitude(values));
    }
}
