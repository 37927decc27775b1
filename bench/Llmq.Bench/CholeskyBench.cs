using Llmq.Numerics;

namespace Llmq.Bench;

/// <summary>Cholesky factorization (n³/3 flops), SPD inverse and GPTQ's upper Cholesky factor of the inverse for the
/// Hessian sizes of 4096- and 11008-wide layers, on all cores.</summary>
static class CholeskyBench
{
    public static void Run()
    {
        foreach (int n in new[] { 4096, 11008 })
        {
            var spd = Spd(n);
            var work = new float[(long)n * n];
            double cube = (double)n * n * n;
            Report("Factor", n, cube / 3, () => Cholesky.Factor(work, n), () => spd.CopyTo(work));
            Report("UpperCholeskyOfInverse", n, cube, () => Cholesky.UpperCholeskyOfInverse(work, n), () => spd.CopyTo(work));
            Report("InvertSpd", n, cube, () => Cholesky.InvertSpd(work, n), () => spd.CopyTo(work));
        }
    }

    /// <summary>flops: the classical count of the operation (n³/3 factor, n³ for the inverses), for comparing rates.</summary>
    static void Report(string op, int n, double flops, Action action, Action setup)
    {
        bool large = n > 8192;
        var t = BenchReport.Best(action, setup, maxRuns: large ? 1 : 3, warmUp: !large);
        BenchReport.Line(new
        {
            bench = "cholesky", op, n, threads = Gemm.MaxDegreeOfParallelism,
            seconds = BenchReport.Round(t.Wall, 4), cpu_seconds = BenchReport.Round(t.Cpu, 4), gflops = BenchReport.Round(flops / t.Wall / 1e9),
        });
    }

    /// <summary>Symmetric, diagonal 2, off-diagonal entries below 1/n: positive definite by Gershgorin, built in O(n²).</summary>
    static float[] Spd(int n)
    {
        var rng = new Random(7);
        var a = new float[(long)n * n];
        for (int i = 0; i < n; i++)
        {
            a[(long)i * n + i] = 2;
            for (int j = 0; j < i; j++)
                a[(long)i * n + j] = a[(long)j * n + i] = (float)((rng.NextDouble() * 2 - 1) / n);
        }
        return a;
    }
}
