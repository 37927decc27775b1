using System.Diagnostics;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Bench;

/// <summary>GPTQ W4A16 <c>oneshot</c> of a random-weight model with Qwen2.5-0.5B's shapes over 128 × 512 random token ids
/// (issue 5), beside the time its arithmetic needs at the GEMM throughput measured in the same process on the same shapes.
/// The FLOPs counted: every Linear's product in both passes (calibrate — which stops at down_proj's input — and propagate),
/// causal attention's two products in both passes, the Hessians' XᵀX (upper triangle only, as it is computed) and GPTQ's
/// column sweep; ideal = those FLOPs at the measured GEMM rate, ratio = wall / ideal.
/// LLMQ_ONESHOT_SAMPLES (default 128) shortens a trial run; the model is made once in $LLMQ_BENCH_DIR.</summary>
static class OneshotBench
{
    const int SeqLen = 512, TokensPerBatch = 4096; // SequentialPipeline's batch: 8 samples of 512 per forward call

    public static void Run()
    {
        int samples = int.TryParse(Environment.GetEnvironmentVariable("LLMQ_ONESHOT_SAMPLES"), out var n) && n > 0 ? n : 128;
        var spec = RandomModelSpec.Qwen2_0_5B;
        var model = Path.Combine(QuantizeBench.Root, "qwen2.5-0.5b-bf16");
        if (!File.Exists(Path.Combine(model, "config.json"))) RandomModel.Write(model, spec, seed: 1);

        // GEMM throughput on this model's Linear shapes at the pipeline's batch, and XᵀX on its two Hessian widths.
        int h = spec.HiddenSize, q = spec.NumHeads * spec.ResolvedHeadDim, kv = spec.NumKvHeads * spec.ResolvedHeadDim, inter = spec.IntermediateSize;
        var linears = new (int Out, int In)[] { (q, h), (kv, h), (kv, h), (h, q), (inter, h), (inter, h), (h, inter) };
        double gemmFlops = 0, gemmSeconds = 0;
        foreach (var (o, i) in linears)
        {
            gemmFlops += 2.0 * TokensPerBatch * o * i;
            gemmSeconds += GemmSeconds(TokensPerBatch, o, i);
        }
        double gemmRate = gemmFlops / gemmSeconds;
        var hessianInputs = new[] { h, q, h, inter }; // q/k/v share one input, gate/up another; o_proj, down_proj
        double xtxFlops = hessianInputs.Sum(c => (double)TokensPerBatch * c * (c + 1));
        double xtxRate = xtxFlops / hessianInputs.Sum(c => XtXSeconds(TokensPerBatch, c));

        long tokens = (long)samples * SeqLen;
        double linearFlops = 2.0 * tokens * linears.Sum(s => (double)s.Out * s.In) * spec.NumLayers;
        double downFlops = 2.0 * tokens * h * inter * spec.NumLayers;   // the calibration pass stops at down_proj's input
        double attentionFlops = 4.0 * tokens * (SeqLen + 1) / 2 * spec.NumHeads * spec.ResolvedHeadDim * spec.NumLayers; // QKᵀ and PV, causal
        double forwardFlops = 2 * (linearFlops + attentionFlops) - downFlops;
        double hessianFlops = hessianInputs.Sum(c => (double)tokens * c * (c + 1)) * spec.NumLayers;
        double solveFlops = linears.Sum(s => (double)s.Out * s.In * s.In) * spec.NumLayers;                             // GPTQ sweep: rows·cols²
        double flops = forwardFlops + hessianFlops + solveFlops;
        double ideal = flops / gemmRate;

        var rng = new Random(7);
        var ids = Enumerable.Range(0, samples).Select(_ => Enumerable.Range(0, SeqLen).Select(_ => rng.Next(spec.VocabSize)).ToArray()).ToList();
        var output = Path.Combine(QuantizeBench.Root, "qwen2.5-0.5b-w4a16-gptq");
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var result = Oneshot.Run(new OneshotOptions
        {
            Model = model, Output = output, Overwrite = true, Samples = samples, SeqLen = SeqLen,
            Recipe = Recipe.FromScheme("W4A16", QuantizationMethod.Gptq), Calibration = TextSource.FromIds("random ids", ids),
        }, new Progress<OneshotProgress>(p => Console.Error.WriteLine($"{p.Message}  [{p.Elapsed:hh\\:mm\\:ss}]")));
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds, wall = result.Elapsed.TotalSeconds;
        var t = result.Timings;

        BenchReport.Line(new
        {
            bench = "oneshot", model = "Qwen2.5-0.5B shapes, random bf16", scheme = "W4A16 GPTQ", samples = result.Samples, seq_len = SeqLen,
            threads = Environment.ProcessorCount, wall_s = BenchReport.Round(wall, 1), cpu_s = BenchReport.Round(cpu, 1),
            forward_s = BenchReport.Round(t.Forward, 1), hessian_s = BenchReport.Round(t.Hessian, 1), solve_s = BenchReport.Round(t.Solve, 1),
            io_s = BenchReport.Round(t.Io, 1),
            tflop = BenchReport.Round(flops / 1e12, 1), forward_tflop = BenchReport.Round(forwardFlops / 1e12, 1),
            hessian_tflop = BenchReport.Round(hessianFlops / 1e12, 1), solve_tflop = BenchReport.Round(solveFlops / 1e12, 2),
            gemm_gflops = BenchReport.Round(gemmRate / 1e9, 1), xtx_gflops = BenchReport.Round(xtxRate / 1e9, 1),
            ideal_s = BenchReport.Round(ideal, 1), ratio = BenchReport.Round(wall / ideal, 3),
            forward_ideal_s = BenchReport.Round(forwardFlops / gemmRate, 1),
            hessian_ideal_s = BenchReport.Round(hessianFlops / gemmRate, 1),
        });
    }

    static double GemmSeconds(int m, int n, int k)
    {
        var a = BenchReport.RandomMatrix((long)m * k, 1);
        var b = BenchReport.RandomMatrix((long)n * k, 2);
        var c = new float[(long)m * n];
        return BenchReport.Best(() => Gemm.MatMulTransposeB(a, b, c, m, n, k), maxRuns: 3).Wall;
    }

    static double XtXSeconds(int rows, int cols)
    {
        var x = BenchReport.RandomMatrix((long)rows * cols, 3);
        var hessian = new float[(long)cols * cols];
        return BenchReport.Best(() => Gemm.AddXtX(x, rows, cols, hessian), maxRuns: 3).Wall;
    }
}
