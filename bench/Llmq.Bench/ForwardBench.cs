using System.Diagnostics;
using Llmq.Checkpoints;
using Llmq.Models;
using Llmq.Numerics;

namespace Llmq.Bench;

/// <summary>Decoder forward over 4 × 512 tokens of a random-weight model with Qwen2.5-0.5B's shapes (bf16 on disk, written by
/// our writer), beside the time the same run's GEMM takes for the model's Linear shapes alone (24 layers × q, k, v, o, gate,
/// up, down, plus lm_head). ratio = GEMM-alone time / forward time: the share of the forward that runs at GEMM speed.
/// Everything else (weight loading and bf16 → f32, norms, RoPE, attention, SwiGLU) is the overhead it exposes.</summary>
static class ForwardBench
{
    public static void Run()
    {
        const int batch = 4, seqLen = 512, tokens = batch * seqLen;
        var spec = RandomModelSpec.Qwen2_0_5B;
        var dir = Directory.CreateTempSubdirectory("llmq-forward-bench-");
        try
        {
            RandomModel.Write(dir.FullName, spec, seed: 1);
            using var model = DecoderModel.Open(dir.FullName);
            var ids = Enumerable.Range(0, tokens).Select(i => (int)((i * 2654435761L) % spec.VocabSize)).ToArray();

            model.Forward(ids.AsSpan(0, 64), 1, 64); // warm-up: JIT, page cache, embedding and lm_head in float32

            // The forward as DecoderModel.Forward runs it, timed phase by phase, twice. The logits go into one buffer reused
            // across runs (as an evaluation or calibration loop does), touched before timing like the GEMMs' outputs below:
            // a fresh 1.24 GB array would add its page faults (≈ 4.6 s on this VM), more than the lm_head GEMM itself.
            var logits = new float[(long)tokens * spec.VocabSize];
            logits.AsSpan().Fill(1);
            var runs = new List<(double Forward, double Cpu, double Load, double Layers, double Head)>();
            for (int run = 0; run < 2; run++)
            {
                double load = 0, layers = 0;
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                var total = Stopwatch.StartNew();
                var hidden = model.Embed(ids);
                DecoderLayerWeights? weights = null;
                for (int i = 0; i < model.LayerCount; i++)
                {
                    var phase = Stopwatch.StartNew();
                    weights = model.LoadLayer(i, weights);
                    load += phase.Elapsed.TotalSeconds;
                    phase.Restart();
                    model.ForwardLayer(weights, hidden, batch, seqLen);
                    layers += phase.Elapsed.TotalSeconds;
                }
                var headTimer = Stopwatch.StartNew();
                model.Head(hidden, tokens, logits);
                runs.Add((total.Elapsed.TotalSeconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds, load, layers,
                    headTimer.Elapsed.TotalSeconds));
            }
            GC.KeepAlive(logits);
            logits = null;
            GC.Collect();
            var (forward, forwardCpu, loadSeconds, layerSeconds, head) = runs.MinBy(r => r.Forward);
            double firstForward = runs[0].Forward, firstHead = runs[0].Head;

            // The same products alone, C[tokens × out] = X[tokens × in]·W[out × in]ᵀ.
            int h = spec.HiddenSize, q = spec.NumHeads * spec.ResolvedHeadDim, kv = spec.NumKvHeads * spec.ResolvedHeadDim, inter = spec.IntermediateSize;
            var layerShapes = new (int Out, int In)[] { (q, h), (kv, h), (kv, h), (h, q), (inter, h), (inter, h), (h, inter) };
            var layerGemm = layerShapes.Select(s => GemmSeconds(tokens, s.Out, s.In, runs: 3)).ToArray();
            var headGemm = GemmSeconds(tokens, spec.VocabSize, h, runs: 1);
            double gemm = model.LayerCount * layerGemm.Sum(x => x.Wall) + headGemm.Wall;
            double gemmCpu = model.LayerCount * layerGemm.Sum(x => x.Cpu) + headGemm.Cpu;
            double flops = 2.0 * tokens * (model.LayerCount * layerShapes.Sum(s => (double)s.Out * s.In) + (double)spec.VocabSize * h);

            BenchReport.Line(new
            {
                bench = "forward", model = "Qwen2.5-0.5B shapes, random bf16", batch, seq_len = seqLen, threads = Environment.ProcessorCount,
                seconds = BenchReport.Round(forward, 3), tokens_per_s = BenchReport.Round(tokens / forward, 1),
                first_run_seconds = BenchReport.Round(firstForward, 3), first_run_head_s = BenchReport.Round(firstHead, 3),
                first_run_ratio = BenchReport.Round(gemm / firstForward, 3),
                load_layers_s = BenchReport.Round(loadSeconds, 3), layers_s = BenchReport.Round(layerSeconds, 3), head_s = BenchReport.Round(head, 3),
                gemm_alone_s = BenchReport.Round(gemm, 3), gemm_alone_layers_s = BenchReport.Round(model.LayerCount * layerGemm.Sum(x => x.Wall), 3),
                gemm_alone_head_s = BenchReport.Round(headGemm.Wall, 3),
                forward_cpu_s = BenchReport.Round(forwardCpu, 3), gemm_alone_cpu_s = BenchReport.Round(gemmCpu, 3),
                cpu_ratio = BenchReport.Round(gemmCpu / forwardCpu, 3),
                forward_gflops = BenchReport.Round(flops / forward / 1e9), gemm_gflops = BenchReport.Round(flops / gemm / 1e9),
                ratio = BenchReport.Round(gemm / forward, 3),
            });
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Best wall time of the product and the process CPU time of that same run (CPU time is what a loaded,
    /// shared machine distorts least).</summary>
    static (double Wall, double Cpu) GemmSeconds(int m, int n, int k, int runs)
    {
        var a = BenchReport.RandomMatrix((long)m * k, 1);
        var b = BenchReport.RandomMatrix((long)n * k, 2);
        var c = new float[(long)m * n];
        c.AsSpan().Fill(1); // touch every page first, so a single timed run does not pay for page faults
        var t = BenchReport.Best(() => Gemm.MatMulTransposeB(a, b, c, m, n, k), maxRuns: runs, warmUp: runs > 1);
        return (t.Wall, t.Cpu);
    }
}
