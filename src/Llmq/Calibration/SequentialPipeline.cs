using System.Diagnostics;
using Llmq.Algorithms;
using Llmq.Checkpoints;
using Llmq.Models;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Calibration;

/// <summary>One quantized Linear as the pipeline hands it to an output format.</summary>
public sealed record QuantizedWeight(string Module, QuantizationScheme Scheme, byte[] Codes, QParams QParams, DType ModelDType, double Loss);

/// <summary>Where the time of a run went (seconds).</summary>
public sealed class PipelineTimings
{
    public double Forward, Hessian, Solve, Io;
}

public readonly record struct OneshotProgress(int Layer, int Layers, TimeSpan Elapsed, TimeSpan Remaining, string Message);

/// <summary>
/// llm-compressor's sequential pipeline over our own decoder layers, one layer in memory at a time:
/// <code>
/// hidden = embed(samples)                                   [samples · seqLen × hidden]
/// for each decoder layer:
///     load it (float32 copies)
///     calibrate: run it over all samples up to its last Linear input (outputs discarded), accumulating H = 2/n·Σ xxᵀ per targeted Linear input
///                (q/k/v share one input and so one Hessian, as do gate/up)
///     quantize:  GPTQ each targeted Linear with its Hessian (or round to nearest), writing Ŵ back into the layer
///     propagate: run it again over all samples in place, so the next layer sees the outputs of quantized weights
///     emit:      hand the layer's codes and qparams to the output format, release the layer
/// </code>
/// Round to nearest needs no data, so it skips calibrate and propagate. As in llm-compressor, the Linears inside one layer
/// all see unquantized intra-layer inputs.
/// </summary>
public static class SequentialPipeline
{
    /// <summary>Tokens per forward call: enough for full-width GEMMs, small enough for the layer's activations to stay modest.</summary>
    const int TokensPerBatch = 4096;

    /// <summary>Linears whose input is another's: their Hessian is that one's (vLLM fuses the same sets).</summary>
    static readonly Dictionary<string, string> SharedInput = new()
    {
        ["self_attn.k_proj"] = "self_attn.q_proj",
        ["self_attn.v_proj"] = "self_attn.q_proj",
        ["mlp.up_proj"] = "mlp.gate_proj",
    };

    public static void Run(DecoderModel model, QuantizationPlan plan, Recipe recipe, int[][] samples, Func<int, DType> modelDType,
        Action<int, IReadOnlyList<QuantizedWeight>> emitLayer, PipelineTimings timings, IProgress<OneshotProgress>? progress, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        var gptq = recipe.Method == QuantizationMethod.Gptq;
        int seqLen = samples.Length > 0 ? samples[0].Length : 0, h = model.HiddenSize;
        if (gptq && samples.Length == 0) throw new LlmqException("GPTQ needs calibration samples, and none were built");
        if (samples.Any(s => s.Length != seqLen)) throw new LlmqException("calibration samples must all have the same length");

        var hidden = gptq ? new float[(long)samples.Length * seqLen * h] : []; // [samples · seqLen × hidden]
        var io = Stopwatch.StartNew();
        for (var s = 0; gptq && s < samples.Length; s++)
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

            Hessians? hessians = null;
            if (gptq && targeted.Count > 0)
            {
                hessians = new Hessians(targeted);
                ForEachBatch(samples.Length, batch, (first, count) =>
                {
                    var span = scratch.AsSpan(0, count * seqLen * h);
                    hidden.AsSpan(first * seqLen * h, span.Length).CopyTo(span);
                    hessians.BeginBatch(count);
                    model.ObserveLinearInputs(weights, span, count, seqLen, hessians);
                    cancellation.ThrowIfCancellationRequested();
                });
                timings.Hessian += hessians.Seconds;
                timings.Forward += hessians.Wall.Elapsed.TotalSeconds - hessians.Seconds;
            }

            var solve = Stopwatch.StartNew();
            var results = new List<QuantizedWeight>(targeted.Count);
            foreach (var name in targeted)
            {
                cancellation.ThrowIfCancellationRequested();
                var scheme = plan.SchemeOf(name);
                var args = scheme.Weights!;
                var (rows, cols) = weights.WeightShape(name);
                var dtype = modelDType(layer);
                var precision = Formats.CompressedTensors.LinearCompressors.Precision(dtype);
                var weight = weights.Weight(name);
                if (hessians is not null)
                {
                    var result = Gptq.Quantize(weight, rows, cols, hessians.For(name), recipe.Gptq with { ActOrder = Recipe.ActOrderOf(args) }, args, precision);
                    results.Add(new QuantizedWeight(name, scheme, result.Codes, result.QParams, dtype, result.Loss));
                }
                else
                {
                    var qp = Observers.ForWeights(args).Compute(weight, rows, cols, args, precision);
                    var codes = new byte[rows * cols];
                    FakeQuant.Quantize(weight, qp, args, codes);
                    results.Add(new QuantizedWeight(name, scheme, codes, qp, dtype, 0));
                }
            }
            timings.Solve += solve.Elapsed.TotalSeconds;

            if (gptq)
            {
                var forward = Stopwatch.StartNew();
                ForEachBatch(samples.Length, batch, (first, count) =>
                    model.ForwardLayer(weights, hidden.AsSpan(first * seqLen * h, count * seqLen * h), count, seqLen));
                timings.Forward += forward.Elapsed.TotalSeconds;
            }

            io.Restart();
            emitLayer(layer, results);
            timings.Io += io.Elapsed.TotalSeconds;

            var elapsed = clock.Elapsed;
            var remaining = elapsed / (layer + 1) * (model.LayerCount - layer - 1);
            var loss = results.Count > 0 ? $", GPTQ loss {results.Sum(r => r.Loss):G4}" : "";
            progress?.Report(new OneshotProgress(layer + 1, model.LayerCount, elapsed, remaining, $"layer {layer + 1}/{model.LayerCount}: {results.Count} Linears{loss}"));
        }
    }

    static void ForEachBatch(int samples, int batch, Action<int, int> body)
    {
        for (var first = 0; first < samples; first += batch) body(first, Math.Min(batch, samples - first));
    }

    /// <summary>Hessians of the targeted Linears' inputs, H = 2/n·Σ xxᵀ over n sequences (spec §6.1): the sum accumulates
    /// and is divided once, when a solve asks for it.</summary>
    sealed class Hessians(IReadOnlyList<string> targeted) : ILinearInputObserver
    {
        readonly Dictionary<string, (float[] H, int Cols)> _byInput = new(StringComparer.Ordinal);
        readonly Dictionary<string, int> _sequences = new(StringComparer.Ordinal);
        readonly HashSet<string> _targeted = targeted.ToHashSet(StringComparer.Ordinal);
        readonly HashSet<string> _seenThisBatch = new(StringComparer.Ordinal);
        readonly Stopwatch _accumulate = new();
        public readonly Stopwatch Wall = Stopwatch.StartNew();
        int _batchSequences;

        public double Seconds => _accumulate.Elapsed.TotalSeconds;

        /// <summary>The next forward call runs <paramref name="sequences"/> sequences (llm-compressor's n counts sequences).</summary>
        public void BeginBatch(int sequences)
        {
            _batchSequences = sequences;
            _seenThisBatch.Clear();
        }

        static string InputOf(string linear)
        {
            var dot = linear.IndexOf(".self_attn.", StringComparison.Ordinal) is >= 0 and var a ? a : linear.IndexOf(".mlp.", StringComparison.Ordinal);
            if (dot < 0) return linear;
            return SharedInput.TryGetValue(linear[(dot + 1)..], out var owner) ? linear[..(dot + 1)] + owner : linear;
        }

        public void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols)
        {
            // q/k/v (gate/up) report one input three (two) times: the first targeted one accumulates it
            if (!_targeted.Contains(linearName) || !_seenThisBatch.Add(InputOf(linearName))) return;
            var key = InputOf(linearName);
            _accumulate.Start();
            if (!_byInput.TryGetValue(key, out var entry)) _byInput[key] = entry = (new float[cols * cols], cols);
            Gemm.AddXtX(input, rows, cols, entry.H, 2f);
            _sequences[key] = _sequences.GetValueOrDefault(key) + _batchSequences;
            _accumulate.Stop();
        }

        /// <summary>A fresh copy of the Hessian for <paramref name="linear"/> (GPTQ overwrites it).</summary>
        public float[] For(string linear)
        {
            var key = InputOf(linear);
            if (!_byInput.TryGetValue(key, out var entry)) throw new LlmqException($"{linear}: no calibration input was observed");
            var h = GC.AllocateUninitializedArray<float>(entry.H.Length);
            System.Numerics.Tensors.TensorPrimitives.Multiply(entry.H, 1f / _sequences[key], h);
            return h;
        }
    }
}
