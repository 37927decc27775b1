using Llmq.Algorithms;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Bench;

/// <summary>The solve part of oneshot alone: GPTQ W4A16 g128 (llm-compressor defaults) of one decoder layer of
/// Qwen2.5-0.5B, per Linear shape, with the upper Cholesky factor of the inverse Hessian beside it.</summary>
static class GptqSolveBench
{
    public static void Run()
    {
        var args = SchemePresets.Get("W4A16", ["Linear"]).Weights!;
        double layerWall = 0, layerCpu = 0, layerFlops = 0;
        // (name, rows, cols, Linears of that shape per layer)
        foreach (var (name, rows, cols, count) in new[] { ("q_proj/o_proj", 896, 896, 2), ("k_proj/v_proj", 128, 896, 2), ("gate_proj/up_proj", 4864, 896, 2), ("down_proj", 896, 4864, 1) })
        {
            // H = 2/n·XᵀX of 4096 random inputs (what the pipeline accumulates), dampened as GPTQ does for the Cholesky alone.
            var hessian = new float[cols * cols];
            Gemm.AddXtX(BenchReport.RandomMatrix(4096L * cols, 2), 4096, cols, hessian, 2f / 4096);
            var dampened = (float[])hessian.Clone();
            for (var j = 0; j < cols; j++) dampened[j * cols + j] += 0.01f * hessian[j * cols + j];
            var weight = BenchReport.RandomMatrix((long)rows * cols, 1);
            var (h, w) = (new float[hessian.Length], new float[weight.Length]);
            void Setup() { hessian.CopyTo(h, 0); weight.CopyTo(w, 0); }
            var chol = BenchReport.Best(() => Cholesky.UpperCholeskyOfInverse(h, cols), () => dampened.CopyTo(h, 0), maxRuns: 3);
            var gptq = BenchReport.Best(() => Gptq.Quantize(w, rows, cols, h, new GptqOptions(), args), Setup, maxRuns: 3);
            // Factor + triangular inverse (2n³/3) and the lazy updates (rows·cols² multiply-adds counted as 2 flops, halved: a triangle).
            double flops = 2.0 * cols * cols * cols / 3 + (double)rows * cols * cols;
            (layerWall, layerCpu, layerFlops) = (layerWall + count * gptq.Wall, layerCpu + count * gptq.Cpu, layerFlops + count * flops);
            BenchReport.Line(new
            {
                bench = "gptq-solve", linear = name, rows, cols,
                cholesky_seconds = BenchReport.Round(chol.Wall, 4), cholesky_cpu_seconds = BenchReport.Round(chol.Cpu, 4),
                seconds = BenchReport.Round(gptq.Wall, 4), cpu_seconds = BenchReport.Round(gptq.Cpu, 4),
                gflops = BenchReport.Round(flops / gptq.Wall / 1e9), gflops_per_cpu_second = BenchReport.Round(flops / gptq.Cpu / 1e9),
            });
        }
        BenchReport.Line(new
        {
            bench = "gptq-solve", linear = "layer (7 Linears)", seconds = BenchReport.Round(layerWall, 3), cpu_seconds = BenchReport.Round(layerCpu, 3),
            gflops = BenchReport.Round(layerFlops / layerWall / 1e9), gflops_per_cpu_second = BenchReport.Round(layerFlops / layerCpu / 1e9),
        });
    }
}
