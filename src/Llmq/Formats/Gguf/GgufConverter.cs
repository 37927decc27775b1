using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Models;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Formats.Gguf;

/// <summary>How the Q4_0 / Q8_0 tensors of a conversion are quantized.</summary>
public enum GgufMethod
{
    /// <summary>llama.cpp's own quantizers (bit-exact with llama-quantize).</summary>
    Ggml,
    /// <summary>GPTQ on the same block grid (<see cref="GgufGptq"/>), calibrated layer by layer; other types as llama.cpp.</summary>
    Gptq,
}

public sealed class GgufConvertOptions
{
    public GgufFileType FileType { get; init; } = GgufFileType.Q4_K_M;
    /// <summary>Importance weights per GGUF tensor name (llama-quantize's --imatrix).</summary>
    public ImportanceMatrix? Imatrix { get; init; }
    /// <summary>Where the imatrix came from, recorded as quantize.imatrix.file.</summary>
    public string? ImatrixFile { get; init; }
    /// <summary>Calibration text (<c>--dataset</c>): its importance matrix is computed from our own calibration pass and used
    /// as <see cref="Imatrix"/>; GPTQ also takes its Hessians from it. Null: no imatrix, and GPTQ calibrates on the
    /// built-in calibration text.</summary>
    public TextSource? Dataset { get; init; }
    /// <summary>Calibration samples and their length in tokens.</summary>
    public int Samples { get; init; } = 128;
    public int SeqLen { get; init; } = 512;
    public GgufMethod Method { get; init; } = GgufMethod.Ggml;
    public GptqOptions Gptq { get; init; } = new();
    public bool Overwrite { get; init; }
}

public sealed record GgufTensorReport(string Name, GgmlType Type, long[] Dimensions, long Bytes);

public sealed record GgufConversionResult(string Path, IReadOnlyList<GgufTensorReport> Tensors, long InputBytes, long OutputBytes, TimeSpan Elapsed);

/// <summary>Hugging Face Llama-family directory → GGUF in one pass: what convert_hf_to_gguf.py (--outtype f32) and
/// llama-quantize do together. Tensors are read one at a time from the memory-mapped checkpoint, permuted, quantized
/// in parallel and appended; the file appears under its final name only when complete. With <see cref="GgufMethod.Gptq"/>
/// the decoder layers are written as the layer-by-layer calibration finishes each one (<see cref="GgufGptq"/>).</summary>
public static class GgufConverter
{
    public const uint QuantizationVersion = 2; // GGML_QNT_VERSION

    public static GgufConversionResult Convert(string modelDir, string outputPath, GgufConvertOptions options, IProgress<string>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        var config = ModelConfig.Load(modelDir);
        if (config.ModelType is not ("llama" or "mistral"))
            throw new LlmqException($"{modelDir}: GGUF export supports the Llama family (llama, mistral), not '{config.ModelType}'");
        if (config.AttentionBias)
            throw new LlmqException($"{modelDir}: attention biases are not supported by the llama GGUF layout");
        var full = Path.GetFullPath(outputPath);
        if (File.Exists(full) && !options.Overwrite)
            throw new LlmqException($"{outputPath} already exists (pass --overwrite to replace it)");

        var gptq = options.Method == GgufMethod.Gptq;
        if (gptq && options.FileType is not (GgufFileType.Q4_0 or GgufFileType.Q8_0))
            throw new LlmqException($"GPTQ solves on the Q4_0 and Q8_0 block grids: use --type Q4_0 or Q8_0, not {options.FileType}");
        if (options.Dataset is not null && options.Imatrix is not null)
            throw new LlmqException("give an importance matrix or a dataset to compute one from, not both");

        using var checkpoint = Checkpoint.Open(modelDir);
        var plan = Plan(checkpoint, config);
        using var model = gptq || options.Dataset is not null ? DecoderModel.Open(modelDir) : null;
        var samples = model is null ? null : Oneshot.BuildSamples(modelDir, options.Dataset ?? CalibrationSet.BuiltIn, options.Samples, options.SeqLen);
        var imatrix = options.Dataset is { } dataset ? ImatrixCollector.Compute(model!, samples!, dataset.Name, progress) : options.Imatrix;
        var policy = new GgufTypePolicy(options.FileType, config.NumHiddenLayers, config.NumAttentionHeads, config.NumKeyValueHeads,
            imatrix is not null, tiedEmbeddings: !plan.Any(p => p.Gguf == "output.weight"),
            attentionVCount: plan.Count(p => p.Gguf.Contains("attn_v.weight", StringComparison.Ordinal)));

        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        var reports = new List<GgufTensorReport>();
        try
        {
            using (var writer = new GgufWriter(temp))
            {
                AddModelMetadata(writer, config, modelDir, options, imatrix, progress);
                foreach (var p in plan)
                {
                    var type = policy.Choose(p.Gguf, p.Dimensions.Length, p.Dimensions[0]);
                    writer.AddTensor(p.Gguf, type, p.Dimensions);
                    reports.Add(new GgufTensorReport(p.Gguf, type, p.Dimensions, writer.TensorBytes(p.Gguf)));
                }
                writer.WriteHeader();
                using var writes = new WriteBehind(writer);
                int next = 0;
                void WriteNext(IReadOnlyDictionary<string, byte[]>? solved)
                {
                    progress?.Report($"[{next + 1}/{plan.Count}] {plan[next].Gguf} → {GgmlTypes.Name(reports[next].Type)}");
                    // the kernel reads the next tensor from disk while this one is quantized
                    if (next + 1 < plan.Count && plan[next + 1].Values is null) PageRelease.Prefetch(checkpoint, checkpoint.Info(plan[next + 1].Hf));
                    WriteTensor(writer, checkpoint, config, plan[next], reports[next].Type, imatrix, solved?.GetValueOrDefault(plan[next].Hf), writes);
                    next++;
                }
                if (gptq)
                {
                    // the global tensors come first in the file; then each layer is written as the pipeline hands it over
                    while (next < plan.Count && GgufTensorNames.Layer(plan[next].Gguf) < 0) WriteNext(null);
                    var solvedTypes = plan.Zip(reports)
                        .Where(t => GgufTensorNames.Layer(t.First.Gguf) >= 0 && GgufGptq.Supports(t.Second.Type))
                        .ToDictionary(t => t.First.Hf[..^".weight".Length], t => t.Second.Type);
                    GgufGptq.Run(model!, checkpoint.Tensors, solvedTypes, samples!, options.Gptq, (layer, solved) =>
                    {
                        while (next < plan.Count && GgufTensorNames.Layer(plan[next].Gguf) == layer) WriteNext(solved);
                    }, progress);
                }
                while (next < plan.Count) WriteNext(null);
                writes.Flush();
                writer.Finish();
            }
            File.Move(temp, full, overwrite: options.Overwrite);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new GgufConversionResult(full, reports, checkpoint.Tensors.Sum(t => t.ByteLength), new FileInfo(full).Length, clock.Elapsed);
    }

    /// <param name="Values">the tensor's contents when the converter makes it (rope_freqs), else null: read <paramref name="Hf"/></param>
    sealed record PlannedTensor(string Hf, string Gguf, GgufRowOrder Order, long[] Dimensions, float[]? Values = null);

    static List<PlannedTensor> Plan(Checkpoint checkpoint, ModelConfig config)
    {
        var plan = new List<PlannedTensor>();
        if (RopeFrequencyFactors(config) is { } factors)
            plan.Add(new PlannedTensor("", GgufTensorNames.RopeFrequencies, GgufRowOrder.AsIs, [factors.Length], factors));
        foreach (var t in checkpoint.Tensors)
        {
            if (t.Name == "lm_head.weight" && config.TieWordEmbeddings) continue;
            var gguf = GgufTensorNames.ToGguf(t.Name, out var order);
            if (gguf is null) continue;
            plan.Add(new PlannedTensor(t.Name, gguf, order, t.Shape.Reverse().ToArray()));
        }
        plan.Sort((a, b) => GgufTensorNames.CompareForFile(a.Gguf, b.Gguf));
        return plan;
    }

    static void AddModelMetadata(GgufWriter w, ModelConfig c, string modelDir, GgufConvertOptions options, ImportanceMatrix? imatrix,
        IProgress<string>? progress)
    {
        const string arch = "llama";
        w.Add("general.architecture", GgufValue.Str(arch));
        w.Add("general.type", GgufValue.Str("model"));
        w.Add("general.name", GgufValue.Str(Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar))));
        w.Add($"{arch}.block_count", GgufValue.U32((uint)c.NumHiddenLayers));
        w.Add($"{arch}.context_length", GgufValue.U32((uint)c.MaxPositionEmbeddings));
        w.Add($"{arch}.embedding_length", GgufValue.U32((uint)c.HiddenSize));
        w.Add($"{arch}.feed_forward_length", GgufValue.U32((uint)c.IntermediateSize));
        w.Add($"{arch}.attention.head_count", GgufValue.U32((uint)c.NumAttentionHeads));
        w.Add($"{arch}.attention.head_count_kv", GgufValue.U32((uint)c.NumKeyValueHeads));
        w.Add($"{arch}.rope.freq_base", GgufValue.F32((float)c.RopeTheta));
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.F32((float)c.RmsNormEps));
        if (c.HeadDim != c.HiddenSize / c.NumAttentionHeads || c.Json.ContainsKey("head_dim"))
        {
            w.Add($"{arch}.attention.key_length", GgufValue.U32((uint)c.HeadDim));
            w.Add($"{arch}.attention.value_length", GgufValue.U32((uint)c.HeadDim));
        }
        w.Add($"{arch}.vocab_size", GgufValue.U32((uint)c.VocabSize));
        w.Add($"{arch}.rope.dimension_count", GgufValue.U32((uint)c.HeadDim));
        // llama3 scaling has no keys: the rope_freqs tensor carries it (RopeFrequencyFactors)
        if (RopeScalingType(c) == "linear" && c.RopeScaling!["factor"] is { } factor)
        {
            w.Add($"{arch}.rope.scaling.type", GgufValue.Str("linear"));
            w.Add($"{arch}.rope.scaling.factor", GgufValue.F32((float)factor.GetValue<double>()));
        }
        if (!GgufVocabulary.AddTo(w, modelDir, c.VocabSize))
            progress?.Report($"{modelDir} has no tokenizer: the GGUF gets no vocabulary (tokenizer.ggml.model = {GgufVocabulary.NoVocabulary})");
        // llama-quantize re-sets these two last, then appends its imatrix notes: the same key order keeps files identical
        w.Add("general.quantization_version", GgufValue.U32(QuantizationVersion));
        w.Add("general.file_type", GgufValue.U32((uint)options.FileType));
        if (imatrix is { } m)
        {
            if (options.ImatrixFile is not null) w.Add("quantize.imatrix.file", GgufValue.Str(options.ImatrixFile));
            if (m.Datasets.Count > 0) w.Add("quantize.imatrix.dataset", GgufValue.Str(m.Datasets[0]));
            w.Add("quantize.imatrix.entries_count", GgufValue.U32((uint)m.Count));
            if (m.ChunkCount > 0) w.Add("quantize.imatrix.chunks_count", GgufValue.U32((uint)m.ChunkCount));
        }
    }

    /// <summary>rope_scaling's type: null (no rope_scaling, or null), "default", "linear" or "llama3"; others are refused.</summary>
    static string? RopeScalingType(ModelConfig c)
    {
        var type = c.RopeScaling is { } s ? (s["rope_type"] ?? s["type"])?.GetValue<string>() : null;
        return type is null or "default" or "linear" or "llama3" ? type
            : throw new LlmqException($"config.json: rope_scaling type '{type}' is not supported by the GGUF export (default, linear and llama3 are)");
    }

    /// <summary>The rope_freqs.weight tensor of a rope_scaling 'llama3' model, as convert_hf_to_gguf.py makes it: per rotary
    /// frequency f_i = theta^(−2i/d) the divisor llama.cpp applies to it (ggml_rope_ext's freq_factors) — 1 for wavelengths
    /// below original_context / high_freq_factor, factor above original_context / low_freq_factor, and between them
    /// 1 / ((1 − s)/factor + s) with s = (original_context / wavelength − low_freq_factor) / (high_freq_factor − low_freq_factor),
    /// which is Hugging Face's rescaled f_i written as a divisor. Null for the other rope types.</summary>
    /// <remarks>In float32, step for step as the converter's torch float32 tensors, so the bytes are the converter's.
    /// original_max_position_embeddings is read from rope_scaling, where Hugging Face reads it (the converter reads the
    /// top-level key, default 8192, which is the same number for Meta's Llama 3.x configs).</remarks>
    public static float[]? RopeFrequencyFactors(ModelConfig c)
    {
        if (RopeScalingType(c) != "llama3") return null;
        var s = c.RopeScaling!;
        double Number(string key) => s[key] is JsonValue v ? v.Deserialize<double>()
            : throw new LlmqException($"config.json: rope_scaling 'llama3' needs '{key}'");
        double factor = Number("factor"), low = Number("low_freq_factor"), high = Number("high_freq_factor");
        double context = Number("original_max_position_embeddings");
        if (!(high > low)) throw new LlmqException($"config.json: rope_scaling high_freq_factor {high} must exceed low_freq_factor {low}");
        return Llama3Factors(c.RopeTheta, c.HeadDim, factor, low, high, context);
    }

    static float[] Llama3Factors(double theta, int headDim, double factor, double low, double high, double context)
    {
        float lowWavelength = (float)(context / low), highWavelength = (float)(context / high);
        var factors = new float[headDim / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            float frequency = 1f / MathF.Pow((float)theta, (float)(2 * i) / headDim);
            float wavelength = (float)(2 * Math.PI) / frequency;
            if (wavelength < highWavelength) factors[i] = 1f;
            else if (wavelength > lowWavelength) factors[i] = (float)factor;
            else
            {
                float smooth = ((float)context / wavelength - (float)low) / (float)(high - low);
                factors[i] = 1f / ((1f - smooth) / (float)factor + smooth);
            }
        }
        return factors;
    }

    /// <summary>The 'llama3' rope_scaling a GGUF's rope_freqs tensor came from, or null. Only the ratios of
    /// original_max_position_embeddings, low_freq_factor and high_freq_factor shape the frequencies, so this takes
    /// low_freq_factor = 1 (Llama 3.x's value), solves the other two from two blended frequencies, rounds the context to
    /// an integer and high_freq_factor to 1/1000, and keeps the result only if <see cref="RopeFrequencyFactors"/> makes
    /// exactly these factors from it.</summary>
    public static JsonObject? Llama3Scaling(ReadOnlySpan<float> factors, double theta, int headDim)
    {
        if (factors.Length != headDim / 2 || factors.Length == 0) return null;
        float factor = factors[factors.Length - 1];
        // 1 / factor blended towards 1 over the wavelengths between the bands: smooth = context/(high−low)/λ − low/(high−low)
        var blended = new List<(double InverseWavelength, double Smooth)>();
        for (int i = 0; i < factors.Length; i++)
        {
            if (!(factors[i] > 1f && factors[i] < factor)) continue;
            double inverseWavelength = 1 / (2 * Math.PI * Math.Pow(theta, 2.0 * i / headDim));
            blended.Add((inverseWavelength, (1 / (double)factors[i] - 1 / (double)factor) / (1 - 1 / (double)factor)));
        }
        if (!(factor > 1f) || blended.Count < 2) return null;
        var (u0, s0) = blended[0];
        var (u1, s1) = blended[^1];
        double a = (s0 - s1) / (u0 - u1), b = a * u0 - s0;   // a = context/(high−low), b = low/(high−low)
        if (!(a > 0 && b > 0) || !double.IsFinite(a / b)) return null;
        double context = Math.Round(a / b), high = Math.Round((b + 1) / b * 1000) / 1000;
        if (!(context >= 1 && high > 1)) return null;
        var remade = Llama3Factors(theta, headDim, factor, 1, high, context);
        if (!remade.AsSpan().SequenceEqual(factors)) return null;
        return new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = (double)factor, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = high,
            ["original_max_position_embeddings"] = (long)context,
        };
    }

    /// <summary>Input elements read and quantized per step when a tensor is streamed: memory stays at two such blocks of
    /// output however large the tensor (the 1 GB float32 of a 128k-token embedding never exists at once).
    /// Settable so tests can stream small tensors in many steps; the output does not depend on it.</summary>
    internal static int StreamElements { get; set; } = 1 << 22;

    /// <summary>Input elements (whole rows, at least one) per parallel work item of a step: enough to amortize its
    /// scheduling, small enough that a step has many items to balance the cores with. Settable for the same tests.</summary>
    internal static int TaskElements { get; set; } = 1 << 16;

    /// <summary>Consumed input bytes dropped from the mapping at a time while a tensor streams: a few steps' worth, so the
    /// input stays a few tens of MB resident while the unmapping (and the TLB flushes it sends the other core) comes
    /// in fewer, larger calls (after every 8 MB step it cost about 1 % more of the conversion).</summary>
    const long ReleaseBytes = 32 << 20;

    /// <summary>Each worker's float32 rows, reused from item to item.</summary>
    [ThreadStatic] static float[]? t_rows;

    /// <summary>n floats of the worker's rows, starting on a 64-byte boundary (the array is pinned, so it stays one):
    /// the kernels load whole cache lines of them.</summary>
    static unsafe Span<float> Rows(int n)
    {
        var rows = t_rows;
        if (rows is null || rows.Length < n + 15) t_rows = rows = GC.AllocateUninitializedArray<float>(n + 15, pinned: true);
        int skip = (int)(-(nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(rows)) & (CacheLines.Size - 1)) / sizeof(float);
        return rows.AsSpan(skip, n);
    }

    /// <summary>Tensor bytes go to the file on a pool thread while the next step is quantized: two buffers, each reused
    /// only once its write has finished, written one after another in the order they were handed over.</summary>
    sealed class WriteBehind(GgufWriter writer) : IDisposable
    {
        readonly byte[][] _buffers = [[], []];
        readonly Task[] _writes = [Task.CompletedTask, Task.CompletedTask];
        Task _last = Task.CompletedTask;
        int _next;

        /// <summary>The buffer of the next write, at least <paramref name="length"/> bytes, once its previous write is done.</summary>
        public byte[] Buffer(int length)
        {
            _writes[_next].GetAwaiter().GetResult();
            ref var buffer = ref _buffers[_next];
            if (buffer.Length < length) buffer = GC.AllocateUninitializedArray<byte>(length);
            return buffer;
        }

        /// <summary>Queues the first <paramref name="length"/> bytes of the last <see cref="Buffer"/>.</summary>
        public void Write(int length)
        {
            var buffer = _buffers[_next];
            _writes[_next] = Then(() => writer.Write(buffer.AsSpan(0, length)));
            _next ^= 1;
        }

        /// <summary>Runs <paramref name="action"/> after what is queued so far, off the quantizing threads' path.</summary>
        public Task Then(Action action) => _last = _last.ContinueWith(previous =>
        {
            previous.GetAwaiter().GetResult(); // a failed write fails what comes after it, so Buffer or Flush throws it
            action();
        }, TaskScheduler.Default);

        /// <summary>Waits until everything queued is in the writer.</summary>
        public void Flush() => _last.GetAwaiter().GetResult();

        /// <summary>On an error elsewhere, the writes in flight finish before the writer is disposed; their own errors
        /// matter less than the one already on its way.</summary>
        public void Dispose()
        {
            try { _last.Wait(); }
            catch (AggregateException) { }
        }
    }

    /// <param name="solved">GPTQ's blocks for this tensor in HF row order, or null to quantize it here</param>
    static void WriteTensor(GgufWriter writer, Checkpoint checkpoint, ModelConfig config, PlannedTensor p, GgmlType type,
        ImportanceMatrix? imatrix, byte[]? solved, WriteBehind writes)
    {
        int cols = (int)p.Dimensions[0];
        int heads = p.Order == GgufRowOrder.PermuteQueryHeads ? config.NumAttentionHeads : config.NumKeyValueHeads;
        if (solved is not null || p.Values is not null) writes.Flush();
        if (solved is not null)
        {
            // rows are independent in GPTQ, so llama.cpp's q/k row order is applied to the finished blocks
            if (p.Order != GgufRowOrder.AsIs)
            {
                var permuted = GC.AllocateUninitializedArray<byte>(solved.Length);
                GgufTensorNames.PermuteRows<byte>(solved, permuted, heads, (int)GgmlTypes.RowSize(type, cols));
                solved = permuted;
            }
            writer.WriteTensor(p.Gguf, solved);
            return;
        }
        if (p.Values is { } values)
        {
            // made by the converter (rope_freqs): small, written in one piece
            var made = new byte[GgmlTypes.RowSize(type, cols) * (values.Length / cols)];
            GgmlQuants.QuantizeRows(type, values, made, cols, null);
            writer.WriteTensor(p.Gguf, made);
            return;
        }
        var info = checkpoint.Info(p.Hf);
        long rows = info.ElementCount / Math.Max(1, cols);
        var importance = imatrix?.Weights(p.Gguf);
        if (importance is not null && importance.Length != cols)
            throw new LlmqException($"imatrix entry '{p.Gguf}' has {importance.Length} columns, the tensor has {cols}");
        int headRows = 0;
        if (p.Order != GgufRowOrder.AsIs)
        {
            if (rows % heads != 0 || rows / heads % 2 != 0)
                throw new LlmqException($"{p.Hf}: cannot split {rows} rows into {heads} heads of even size");
            headRows = (int)(rows / heads);
        }
        int rowBytes = (int)GgmlTypes.RowSize(type, cols), inputSize = DTypes.Size(info.DType);
        int step = Math.Max(1, StreamElements / Math.Max(1, cols));
        int taskRows = Math.Min(step, Math.Max(1, TaskElements / Math.Max(1, cols)));
        long released = 0;   // input bytes whose pages are dropped
        for (long r0 = 0; r0 < rows; r0 += step)
        {
            int n = (int)Math.Min(step, rows - r0);
            var bytes = writes.Buffer(n * rowBytes);
            // each item reads its own rows from the mapped checkpoint (q/k: from where the permutation takes them) and
            // quantizes them into its slice of the step's output, so no core waits for a read or a copy of the whole step
            ParallelFor((n + taskRows - 1) / taskRows, t =>
            {
                int first = t * taskRows, count = Math.Min(taskRows, n - first);
                var x = Rows(count * cols);
                if (headRows == 0) checkpoint.ReadFloat32(p.Hf, (r0 + first) * cols, x);
                else
                    for (int i = 0; i < count; i++)
                        checkpoint.ReadFloat32(p.Hf, GgufTensorNames.PermutedSourceRow(r0 + first + i, headRows) * cols, x.Slice(i * cols, cols));
                GgmlQuants.QuantizeRowsSerial(type, x, bytes.AsSpan(first * rowBytes, count * rowBytes), cols, importance);
            });
            writes.Write(n * rowBytes);
            long consumed = (r0 + n) * cols * inputSize;
            if (headRows == 0 && consumed - released >= ReleaseBytes)
            {
                // the input pages consumed so far are dropped (q/k steps also read rows beyond their own, so those wait
                // for the end): a 0.5 GB embedding is never resident at once. Unmapping takes a while, and each call
                // interrupts the other core to flush its TLB: the write thread does it, ReleaseBytes at a time.
                long first = released;
                writes.Then(() => PageRelease.Release(checkpoint, info, first, consumed - first));
                released = consumed;
            }
        }
        writes.Then(() => PageRelease.Release(checkpoint, info));
    }

    /// <summary>Parallel.For that throws the work's own exception (the typed errors of bad input), not an AggregateException.</summary>
    static void ParallelFor(int count, Action<int> body)
    {
        try
        {
            Parallel.For(0, count, body);
        }
        catch (AggregateException e)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }
}
