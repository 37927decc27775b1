using Llmq.Numerics;

namespace Llmq.Bench;

/// <summary>bf16 ↔ f32 bulk conversion on one core, vectorized against the scalar per-element reference, for a
/// cache-resident block (compute bound) and a 16M-element array (memory bound). GB/s counts bytes read + written;
/// per CPU-second as well as per wall second, since the build machine is shared.</summary>
static class BFloat16Bench
{
    public static void Run()
    {
        foreach (int n in new[] { 1 << 15, 1 << 24 })
        {
            var half = new ushort[n];
            var floats = new float[n];
            var rng = new Random(1);
            for (int i = 0; i < n; i++)
                floats[i] = (float)(rng.NextDouble() * 2 - 1);
            BFloat16.FromFloat32(floats, half);
            double bytes = 6.0 * n;
            int reps = Math.Max(1, (1 << 26) / n);
            Report("bf16-to-f32", "vectorized", n, bytes, reps, () => BFloat16.ToFloat32(half, floats));
            Report("bf16-to-f32", "scalar", n, bytes, reps, () => { for (int i = 0; i < half.Length; i++) floats[i] = BFloat16.ToFloat(half[i]); });
            Report("f32-to-bf16", "vectorized", n, bytes, reps, () => BFloat16.FromFloat32(floats, half));
            Report("f32-to-bf16", "scalar", n, bytes, reps, () => { for (int i = 0; i < floats.Length; i++) half[i] = BFloat16.FromFloat(floats[i]); });
        }
    }

    static void Report(string op, string kernel, int n, double bytes, int reps, Action action)
    {
        var t = BenchReport.Best(() => { for (int r = 0; r < reps; r++) action(); }, minSeconds: 0.3);
        BenchReport.Line(new
        {
            bench = "bf16", op, kernel, isa = FmaPeakBench.Isa, elements = n,
            gbps = BenchReport.Round(bytes * reps / t.Wall / 1e9), gb_per_cpu_second = BenchReport.Round(bytes * reps / t.Cpu / 1e9),
            ns_per_element = BenchReport.Round(t.Wall / reps / n * 1e9, 3),
        });
    }
}
