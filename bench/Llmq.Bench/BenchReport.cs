using System.Diagnostics;
using System.Text.Json;

namespace Llmq.Bench;

/// <summary>Output and timing helpers shared by the benches.</summary>
static class BenchReport
{
    /// <summary>Prints one result as a single JSON line.</summary>
    public static void Line(object result) => Console.WriteLine(JsonSerializer.Serialize(result));

    /// <summary>Wall and process CPU seconds of one timed run.</summary>
    public readonly record struct Timing(double Wall, double Cpu);

    /// <summary>Best wall time and best CPU time (separately) of <paramref name="action"/> after one warm-up run;
    /// repeats until <paramref name="minSeconds"/> have been spent or <paramref name="maxRuns"/> reached.
    /// <paramref name="setup"/> runs untimed before each run. CPU time lets a shared, loaded machine still give an
    /// honest per-core efficiency: flops per CPU-second against the FMA loop's flops per CPU-second.</summary>
    public static Timing Best(Action action, Action? setup = null, double minSeconds = 1, int maxRuns = 5, bool warmUp = true)
    {
        if (warmUp) { setup?.Invoke(); action(); }
        double wall = double.MaxValue, cpu = double.MaxValue, spent = 0;
        using var process = Process.GetCurrentProcess();
        for (int run = 0; run < maxRuns && (run == 0 || spent < minSeconds); run++)
        {
            setup?.Invoke();
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            action();
            double s = sw.Elapsed.TotalSeconds;
            process.Refresh();
            wall = Math.Min(wall, s);
            cpu = Math.Min(cpu, (process.TotalProcessorTime - cpu0).TotalSeconds);
            spent += s;
        }
        return new(wall, cpu);
    }

    public static float[] RandomMatrix(long count, int seed)
    {
        var rng = new Random(seed);
        var v = GC.AllocateUninitializedArray<float>(checked((int)count));
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    public static double Round(double x, int digits = 2) => Math.Round(x, digits);
}
