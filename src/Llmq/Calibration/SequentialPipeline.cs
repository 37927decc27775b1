using System.Diagnostics;
using System.Numerics.Tensors;
using Llmq.Algorithms;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Models;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Calibration;

/// <summary>One quantized Linear as the pipeline hands it to an output format, with the calibrated range of its input when
/// its scheme stores static or "local" input scales.</summary>
public sealed record QuantizedWeight(string Module, QuantizationScheme Scheme, byte[] Codes, QParams QParams, DType ModelDType, double Loss)
{
    public ActivationRange? Input { get; init; }
}

/// <summary>Where the time of a run went (seconds). <see cref="Forward"/> counts the layer passes themselves; the statistics
/// taken during them are <see cref="Hessian"/> (GPTQ) and <see cref="Ranges"/> (static input scales).</summary>
public sealed class PipelineTimings
{
    public double Forward, Hessian, Ranges, Solve, Io;
}

public readonly record struct OneshotProgress(int Layer, int Layers, TimeSpan Elapsed, TimeSpan Remaining, string Message);

/// <summary>
/// llm-compressor's sequential pipeline over our own decoder layers, one layer in memory at a time:
/// <code>
/// hidden = embed(samples)                                   [samples · seqLen × hidden]
/// for each decoder layer:
///     load it (float32 copies)
///     calibrate: run it over all samples (GPTQ: only up to down_proj's input, the outputs are discarded), one observer seeing each distinct Linear input once (q/k/v share one input, as do
///                gate/up) and accumulating what the schemes need: H = 2/n·Σ xxᵀ for GPTQ, and the running min / max of the
///                input (static_minmax) for static or "local" input scales (FP8 input_scale, NVFP4 input_global_scale)
///     quantize:  GPTQ each targeted Linear with its Hessian, writing Ŵ back into the layer, or round to nearest
///     propagate: GPTQ runs the layer again over all samples in place, so the next layer sees the outputs of quantized weights;
///                RTN leaves the weights as they are until they are written, so its calibration pass (run in place) already
///                produced the next layer's inputs
///     emit:      hand the layer's codes, qparams and input ranges to the output format, release the layer
/// </code>
/// RTN with no static input scales needs no data and runs no forward pass at all. As in llm-compressor, fake quantization
/// is off during both passes, and the Linears inside one layer all see unquantized intra-layer inputs.
/// </summary>
public static class SequentialPipeline
{
    /// <summary>Tokens per forward call: enough for full-width GEMMs, small enough for the layer's activations to stay modest.</summary>
    const int TokensPerBatch = 4096;

    /// <summary>Linears whose input is another's: their statistics are that one's (vLLM fuses the same sets).</summary>
    static readonly Dictionary<string, string> SharedInput = new()
    {
        ["self_attn.k_proj"] = "self_attn.q_proj",
        ["self_attn.v_proj"] = "self_attn.q_proj",
        ["mlp.up_proj"] = "mlp.gate_proj",
    };

    /// <summary>Whether a run of <paramref name="recipe"/> over <paramref name="plan"/> needs calibration samples.</summary>
    public static bool NeedsData(Recipe recipe, QuantizationPlan plan) => recipe.Method == QuantizationMethod.Gptq || plan.NeedsActivationStatistics;

    public static void Run(DecoderModel model, QuantizationPlan plan, Recipe recipe, int[][] samples, Func<int, DType> modelDType,
        Action<int, IReadOnlyList<QuantizedWeight>> emitLayer, PipelineTimings timings, IProgress<OneshotProgress>? progress, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        var gptq = recipe.Method == QuantizationMethod.Gptq;
        var calibrate = NeedsData(recipe, plan);
        int seqLen = samples.Length > 0 ? samples[0].Length : 0, h = model.HiddenSize;
        if (calibrate && samples.Length == 0)
            throw new LlmqException((gptq ? "GPTQ" : "static input scales") + " need calibration samples, and none were built");
        if (samples.Any(s => s.Length != seqLen)) throw new LlmqException("calibration samples must all have the same length");

        var hidden = calibrate ? new float[(long)samples.Length * seqLen * h] : []; // [samples · seqLen × hidden]
        var io = Stopwatch.StartNew();
        for (var s = 0; calibrate && s < samples.Length; s++)
            model.Embed(samples[s]).CopyTo(hidden.AsSpan(s * seqLen * h, seqLen * h));
        timings.Io += io.Elapsed.TotalSeconds;

        var batch = Math.Max(1, TokensPerBatch / Math.Max(1, seqLen));
        var scratch = gptq ? new float[(long)Math.Min(batch, samples.Length) * seqLen * h] : [];
        for (var layer = 0; layer < model.LayerCount; layer++)
        {
            cancellation.ThrowIfCancellationRequested();
            io.Restart();
            var weights = model.LoadLayer(layer);
            timings.Io += io.Elapsed.TotalSeconds;
            var targeted = weights.LinearNames.Where(plan.Modules.ContainsKey).ToList();

            LayerStatistics? statistics = null;
            if (calibrate && targeted.Count > 0)
            {
                var stats = statistics = new LayerStatistics(gptq ? targeted : [], targeted.Where(n => plan.SchemeOf(n).NeedsActivationStatistics));
                ForEachBatch(samples.Length, batch, (first, count) =>
                {
                    var span = hidden.AsSpan(first * seqLen * h, count * seqLen * h);
                    if (gptq)
                    {
                        span.CopyTo(scratch);   // GPTQ propagates through its quantized weights afterwards
                        span = scratch.AsSpan(0, span.Length);
                    }
                    stats.BeginBatch(count);
                    if (gptq) model.ObserveLinearInputs(weights, span, count, seqLen, stats);   // outputs discarded: stop at the last input
                    else model.ForwardLayer(weights, span, count, seqLen, stats);
                    cancellation.ThrowIfCancellationRequested();
                });
                timings.Hessian += statistics.HessianSeconds;
                timings.Ranges += statistics.RangeSeconds;
                timings.Forward += statistics.Wall.Elapsed.TotalSeconds - statistics.HessianSeconds - statistics.RangeSeconds;
            }

            var solve = Stopwatch.StartNew();
            var dtype = modelDType(layer);
            var precision = LinearCompressors.Precision(dtype);
            var globalScales = GlobalScales(weights, targeted, plan);
            var results = new List<QuantizedWeight>(targeted.Count);
            foreach (var name in targeted)
            {
                cancellation.ThrowIfCancellationRequested();
                var scheme = plan.SchemeOf(name);
                var args = scheme.Weights!;
                var (rows, cols) = weights.WeightShape(name);
                var weight = weights.Weight(name);
                var input = statistics?.RangeOf(name);
                if (gptq)
                {
                    var result = Gptq.Quantize(weight, rows, cols, statistics!.HessianOf(name), recipe.Gptq with { ActOrder = Recipe.ActOrderOf(args) }, args, precision);
                    results.Add(new QuantizedWeight(name, scheme, result.Codes, result.QParams, dtype, result.Loss) { Input = input });
                }
                else
                {
                    var qp = Observers.ForWeights(args).Compute(weight, rows, cols, args, precision, globalScales.TryGetValue(name, out var g) ? g : null);
                    var codes = new byte[rows * cols];
                    FakeQuant.Quantize(weight, qp, args, codes);
                    results.Add(new QuantizedWeight(name, scheme, codes, qp, dtype, 0) { Input = input });
                }
            }
            timings.Solve += solve.Elapsed.TotalSeconds;

            if (gptq || (calibrate && statistics is null))
            {
                var forward = Stopwatch.StartNew();
                ForEachBatch(samples.Length, batch, (first, count) =>
                    model.ForwardLayer(weights, hidden.AsSpan(first * seqLen * h, count * seqLen * h), count, seqLen));
                timings.Forward += forward.Elapsed.TotalSeconds;
            }

            io.Restart();
            emitLayer(layer, results);
            // A layer leaves hundreds of MB of large-object garbage (float32 weights, Hessians and their copies, codes); the
            // GC's own budget would let it pile up to several GB before collecting, so the memory bound is kept here.
            statistics = null;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            timings.Io += io.Elapsed.TotalSeconds;

            var elapsed = clock.Elapsed;
            var remaining = elapsed / (layer + 1) * (model.LayerCount - layer - 1);
            var loss = gptq && results.Count > 0 ? $", GPTQ loss {results.Sum(r => r.Loss):G4}" : "";
            progress?.Report(new OneshotProgress(layer + 1, model.LayerCount, elapsed, remaining, $"layer {layer + 1}/{model.LayerCount}: {results.Count} Linears{loss}"));
        }
    }

    static void ForEachBatch(int samples, int batch, Action<int, int> body)
    {
        for (var first = 0; first < samples; first += batch) body(first, Math.Min(batch, samples - first));
    }

    /// <summary>NVFP4 global scales of the layer's tensor_group Linears, shared across each fused set as the datafree
    /// <see cref="Quantizer"/> shares them.</summary>
    static Dictionary<string, float> GlobalScales(DecoderLayerWeights weights, IEnumerable<string> targeted, QuantizationPlan plan) =>
        FusedLayers.GlobalScales(targeted.Where(n => plan.SchemeOf(n).Weights!.HasGlobalScale)
            .ToDictionary(n => n, n => MathF.Abs(TensorPrimitives.MaxMagnitude(weights.Weight(n))), StringComparer.Ordinal));

    static string InputOf(string linear)
    {
        var dot = linear.IndexOf(".self_attn.", StringComparison.Ordinal) is >= 0 and var a ? a : linear.IndexOf(".mlp.", StringComparison.Ordinal);
        if (dot < 0) return linear;
        return SharedInput.TryGetValue(linear[(dot + 1)..], out var owner) ? linear[..(dot + 1)] + owner : linear;
    }

    /// <summary>
    /// What one calibration pass collects per distinct Linear input: Hessians (the sum 2·Σ xxᵀ, divided by the n sequences
    /// when asked for: H = 2/n·Σ xxᵀ, spec §6.1) for the Linears GPTQ solves, and running min / max (<c>static_minmax</c>: over all calibration
    /// tokens) for the Linears whose schemes store input scales. q/k/v (gate/up) report one input three (two) times: it is
    /// observed once, under the first name.
    /// </summary>
    sealed class LayerStatistics(IEnumerable<string> hessianTargets, IEnumerable<string> rangeTargets) : ILinearInputObserver
    {
        readonly Dictionary<string, (float[] H, int Cols)> _hessians = new(StringComparer.Ordinal);
        readonly Dictionary<string, ActivationRange> _ranges = new(StringComparer.Ordinal);
        readonly Dictionary<string, int> _sequences = new(StringComparer.Ordinal);
        readonly HashSet<string> _hessianTargets = hessianTargets.ToHashSet(StringComparer.Ordinal);
        readonly HashSet<string> _rangeTargets = rangeTargets.ToHashSet(StringComparer.Ordinal);
        readonly HashSet<string> _seenThisBatch = new(StringComparer.Ordinal);
        readonly Stopwatch _hessian = new(), _range = new();
        public readonly Stopwatch Wall = Stopwatch.StartNew();
        int _batchSequences;

        public double HessianSeconds => _hessian.Elapsed.TotalSeconds;
        public double RangeSeconds => _range.Elapsed.TotalSeconds;

        /// <summary>The next forward call runs <paramref name="sequences"/> sequences (llm-compressor's n counts sequences).</summary>
        public void BeginBatch(int sequences)
        {
            _batchSequences = sequences;
            _seenThisBatch.Clear();
        }

        public void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols)
        {
            bool hessian = _hessianTargets.Contains(linearName), range = _rangeTargets.Contains(linearName);
            if (!(hessian || range)) return;
            var key = InputOf(linearName);
            if (!_seenThisBatch.Add(key)) return;
            if (range)
            {
                _range.Start();
                var seen = new ActivationRange(TensorPrimitives.Min(input), TensorPrimitives.Max(input));
                _range.Stop();
                if (!float.IsFinite(seen.Min) || !float.IsFinite(seen.Max))
                    throw new LlmqException($"{linearName}: its calibration input holds NaN or infinite values; the model's weights or the samples are broken");
                _ranges[key] = _ranges.TryGetValue(key, out var before) ? before.Union(seen) : seen;
            }
            if (!hessian) return;
            _hessian.Start();
            if (!_hessians.TryGetValue(key, out var entry)) _hessians[key] = entry = (new float[cols * cols], cols);
            Gemm.AddXtX(input, rows, cols, entry.H, 2f);   // the sum 2·Σ xxᵀ; divided by n once, in HessianOf
            _sequences[key] = _sequences.GetValueOrDefault(key) + _batchSequences;
            _hessian.Stop();
        }

        /// <summary>A fresh copy of the Hessian H = 2/n·Σ xxᵀ for <paramref name="linear"/> (GPTQ overwrites it).</summary>
        public float[] HessianOf(string linear)
        {
            var key = InputOf(linear);
            if (!_hessians.TryGetValue(key, out var entry)) throw new LlmqException($"{linear}: no calibration input was observed");
            var h = GC.AllocateUninitializedArray<float>(entry.H.Length);
            TensorPrimitives.Multiply(entry.H, 1f / _sequences[key], h);
            return h;
        }

        /// <summary>The observed input range of <paramref name="linear"/>; null when its scheme stores no input scales.</summary>
        public ActivationRange? RangeOf(string linear) =>
            !_rangeTargets.Contains(linear) ? null
            : _ranges.TryGetValue(InputOf(linear), out var r) ? r : throw new LlmqException($"{linear}: no calibration input was observed");
    }
}
