using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llmq.Bench;

/// <summary>The machine's float32 FMA peak: every thread runs twelve independent FMA chains (more than latency ×
/// pipes on current x86 cores), so the loop is limited by FMA throughput alone. The GEMM bench divides by this.</summary>
static class FmaPeakBench
{
    public static void Run()
    {
        foreach (int threads in new[] { 1, Environment.ProcessorCount })
        {
            var (wall, perCpuSecond) = Measure(threads);
            BenchReport.Line(new { bench = "fma-peak", isa = Isa, threads, gflops = BenchReport.Round(wall), gflops_per_cpu_s = BenchReport.Round(perCpuSecond) });
        }
    }

    public static string Isa => Vector512.IsHardwareAccelerated ? "avx512" : Vector256.IsHardwareAccelerated ? "avx2" : "scalar";

    /// <summary>GFLOP/s of <paramref name="threads"/> threads running the FMA loop at once (wall clock), and GFLOP per
    /// CPU-second (one core's rate even when other processes share the cores); best of three runs of ~0.2 s of CPU each.</summary>
    public static (double Wall, double PerCpuSecond) Measure(int threads)
    {
        const long iterations = 60_000_000;
        double flops = threads * iterations * 12.0 * 2 * (Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1);
        Loop(1000); // JIT
        var t = BenchReport.Best(() =>
        {
            using var start = new Barrier(threads + 1);
            var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => { start.SignalAndWait(); Loop(iterations); })).ToArray();
            foreach (var w in workers) w.Start();
            start.SignalAndWait();
            foreach (var w in workers) w.Join();
        }, minSeconds: 0, maxRuns: 3, warmUp: false);
        return (flops / t.Wall / 1e9, flops / t.Cpu / 1e9);
    }

    static float sink;

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static void Loop(long iterations)
    {
        if (Vector512.IsHardwareAccelerated) sink += Loop512(iterations);
        else if (Vector256.IsHardwareAccelerated) sink += Loop256(iterations);
        else sink += LoopScalar(iterations);
    }

    // x ← x·a + b converges to b/(1−a): no overflow, no denormals, and the JIT cannot fold it away.
    static float Loop512(long iterations)
    {
        var a = Vector512.Create(0.999f); var b = Vector512.Create(0.001f);
        Vector512<float> x0 = Vector512.Create(1f), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0,
            x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector512.FusedMultiplyAdd(x0, a, b); x1 = Vector512.FusedMultiplyAdd(x1, a, b);
            x2 = Vector512.FusedMultiplyAdd(x2, a, b); x3 = Vector512.FusedMultiplyAdd(x3, a, b);
            x4 = Vector512.FusedMultiplyAdd(x4, a, b); x5 = Vector512.FusedMultiplyAdd(x5, a, b);
            x6 = Vector512.FusedMultiplyAdd(x6, a, b); x7 = Vector512.FusedMultiplyAdd(x7, a, b);
            x8 = Vector512.FusedMultiplyAdd(x8, a, b); x9 = Vector512.FusedMultiplyAdd(x9, a, b);
            x10 = Vector512.FusedMultiplyAdd(x10, a, b); x11 = Vector512.FusedMultiplyAdd(x11, a, b);
        }
        return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    static float Loop256(long iterations)
    {
        var a = Vector256.Create(0.999f); var b = Vector256.Create(0.001f);
        Vector256<float> x0 = Vector256.Create(1f), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0,
            x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector256.FusedMultiplyAdd(x0, a, b); x1 = Vector256.FusedMultiplyAdd(x1, a, b);
            x2 = Vector256.FusedMultiplyAdd(x2, a, b); x3 = Vector256.FusedMultiplyAdd(x3, a, b);
            x4 = Vector256.FusedMultiplyAdd(x4, a, b); x5 = Vector256.FusedMultiplyAdd(x5, a, b);
            x6 = Vector256.FusedMultiplyAdd(x6, a, b); x7 = Vector256.FusedMultiplyAdd(x7, a, b);
            x8 = Vector256.FusedMultiplyAdd(x8, a, b); x9 = Vector256.FusedMultiplyAdd(x9, a, b);
            x10 = Vector256.FusedMultiplyAdd(x10, a, b); x11 = Vector256.FusedMultiplyAdd(x11, a, b);
        }
        return Vector256.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    static float LoopScalar(long iterations)
    {
        float x0 = 1, x1 = 1, x2 = 1, x3 = 1, x4 = 1, x5 = 1, x6 = 1, x7 = 1, x8 = 1, x9 = 1, x10 = 1, x11 = 1;
        for (long i = 0; i < iterations; i++)
        {
            x0 = x0 * 0.999f + 0.001f; x1 = x1 * 0.999f + 0.001f; x2 = x2 * 0.999f + 0.001f; x3 = x3 * 0.999f + 0.001f;
            x4 = x4 * 0.999f + 0.001f; x5 = x5 * 0.999f + 0.001f; x6 = x6 * 0.999f + 0.001f; x7 = x7 * 0.999f + 0.001f;
            x8 = x8 * 0.999f + 0.001f; x9 = x9 * 0.999f + 0.001f; x10 = x10 * 0.999f + 0.001f; x11 = x11 * 0.999f + 0.001f;
        }
        return x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11;
    }
}
