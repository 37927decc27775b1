using System.Diagnostics;
using System.Text.Json;

namespace Llmq.Bench;

/// <summary>Output and timing helpers shared by the benches.</summary>
static class BenchReport
{
    /// <summary>Prints one result as a single JSON line.</summary>
    public static void Line(object result) => Console.WriteLine(JsonSerializer.Serialize(result));

    /// <summary>Best wall time in seconds of <paramref name="action"/> after one warm-up run; repeats until
    /// <paramref name="minSeconds"/> have been spent or <paramref name="maxRuns"/> reached. <paramref name="setup"/>
    /// runs untimed before each run.</summary>
    public static double BestSeconds(Action action, Action? setup = null, double minSeconds = 1, int maxRuns = 5, bool warmUp = true)
    {
        if (warmUp) { setup?.Invoke(); action(); }
        double best = double.MaxValue, spent = 0;
        for (int run = 0; run < maxRuns && (run == 0 || spent < minSeconds); run++)
        {
            setup?.Invoke();
            var sw = Stopwatch.StartNew();
            action();
            double s = sw.Elapsed.TotalSeconds;
            best = Math.Min(best, s);
            spent += s;
        }
        return best;
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
