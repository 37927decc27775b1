using Llmq.Numerics;

namespace Llmq.Bench;

/// <summary>GEMM throughput, one core and all cores, each measurement next to an FMA-peak measurement taken with the
/// same thread count just before it (the machine may be shared, so the ratio is the honest number).</summary>
static class GemmBench
{
    public static void Run()
    {
        // JIT every path once on small products, so a large product timed once measures the kernels, not the JIT.
        var w = BenchReport.RandomMatrix(512 * 512, 9);
        Gemm.MatMulTransposeB(w, w, new float[512 * 512], 512, 512, 512);
        Gemm.AddXtX(w, 512, 512, new float[512 * 512]);

        // (label, m, n, k): C[m×n] = A[m×k]·B[n×k]ᵀ.
        var shapes = new (string Label, int M, int N, int K)[]
        {
            ("1024^3", 1024, 1024, 1024),
            ("4096^3", 4096, 4096, 4096),
            ("[4096x896]·[4864x896]T", 4096, 4864, 896),
            ("[4096x4096]·[11008x4096]T", 4096, 11008, 4096),
        };
        foreach (int threads in new[] { 1, Environment.ProcessorCount })
        {
            foreach (var (label, m, n, k) in shapes)
            {
                var a = BenchReport.RandomMatrix((long)m * k, 1);
                var b = BenchReport.RandomMatrix((long)n * k, 2);
                var c = new float[(long)m * n];
                c.AsSpan().Fill(1); // touch every page, so a single timed run does not pay for page faults
                Report("MatMulTransposeB", label, threads, 2.0 * m * n * k,
                    () => Gemm.MatMulTransposeB(a, b, c, m, n, k), large: (long)m * n * k > 1L << 36);
            }
            // GPTQ's Hessian accumulation: flops counted as computed, the upper triangle only (rows·cols²).
            foreach (var (rows, cols) in new[] { (4096, 896), (4096, 4864) })
            {
                var x = BenchReport.RandomMatrix((long)rows * cols, 3);
                var h = new float[(long)cols * cols];
                h.AsSpan().Fill(1);
                Report("AddXtX", $"[{rows}x{cols}]", threads, 1.0 * rows * cols * cols, () => Gemm.AddXtX(x, rows, cols, h), large: false);
            }
        }
    }

    static void Report(string op, string shape, int threads, double flops, Action action, bool large)
    {
        int saved = Gemm.MaxDegreeOfParallelism;
        Gemm.MaxDegreeOfParallelism = threads;
        try
        {
            var peak = FmaPeakBench.Measure(threads);
            var t = BenchReport.Best(action, maxRuns: large ? 1 : 3, warmUp: !large);
            double gflops = flops / t.Wall / 1e9, perCpu = flops / t.Cpu / 1e9;
            BenchReport.Line(new
            {
                bench = "gemm", op, shape, threads, seconds = BenchReport.Round(t.Wall, 4),
                gflops = BenchReport.Round(gflops), peak_gflops = BenchReport.Round(peak.Wall), ratio = BenchReport.Round(gflops / peak.Wall, 3),
                gflops_per_cpu_s = BenchReport.Round(perCpu), peak_per_cpu_s = BenchReport.Round(peak.PerCpuSecond),
                cpu_ratio = BenchReport.Round(perCpu / peak.PerCpuSecond, 3),
            });
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
    }
}
