using System.Diagnostics;
using Llmq.Checkpoints;

namespace Llmq.Bench;

/// <summary>Safetensors I/O on a ~1 GB bf16 checkpoint (16 tensors of 32M elements) in a temp directory:
/// <c>safetensors-write</c> times our writer (float32 → bf16 conversion + write, and raw bytes), plus RandomModel writing
/// Llama-3.2-1B's shapes (2.5 GB); <c>safetensors-read</c> times memory-mapped read + bf16 → f32 conversion of every tensor against a
/// plain sequential FileStream read of the same file, both with the file in the page cache. GB/s counts file bytes.</summary>
static class SafetensorsBench
{
    const int Tensors = 16, Elements = 32 << 20;

    public static void RunWrite()
    {
        using var dir = new BenchDirectory();
        var values = BenchReport.RandomMatrix(Elements, 1);
        double fileBytes = 2.0 * Tensors * Elements;
        double s = Time(() => Write(dir.Path, values));
        BenchReport.Line(new { bench = "safetensors-write", what = "f32 to bf16 and write", bytes = (long)fileBytes, seconds = BenchReport.Round(s, 3), gbps = BenchReport.Round(fileBytes / s / 1e9) });

        var raw = new byte[2L * Elements];
        new Random(2).NextBytes(raw);
        s = Time(() =>
        {
            using var writer = new SafetensorsWriter(dir.Path);
            for (int t = 0; t < Tensors; t++)
                writer.Add($"model.layers.{t}.weight", DType.BF16, [Elements / 4096, 4096], raw);
            writer.Finish();
        });
        BenchReport.Line(new { bench = "safetensors-write", what = "raw bytes", bytes = (long)fileBytes, seconds = BenchReport.Round(s, 3), gbps = BenchReport.Round(fileBytes / s / 1e9) });

        var spec = RandomModelSpec.Llama1B;
        s = Time(() => RandomModel.Write(Path.Combine(dir.Path, "qwen"), spec, seed: 1));
        BenchReport.Line(new { bench = "safetensors-write", what = "RandomModel Llama-3.2-1B shapes, bf16", parameters = spec.ParameterCount, seconds = BenchReport.Round(s, 2), gbps = BenchReport.Round(2.0 * spec.ParameterCount / s / 1e9) });
    }

    public static void RunRead()
    {
        using var dir = new BenchDirectory();
        Write(dir.Path, BenchReport.RandomMatrix(Elements, 1));
        var file = Path.Combine(dir.Path, "model.safetensors");
        long length = new FileInfo(file).Length;
        var buffer = new float[Elements];

        double mapped = BenchReport.BestSeconds(() =>
        {
            using var checkpoint = Checkpoint.Open(dir.Path);
            foreach (var tensor in checkpoint.Tensors)
                checkpoint.ReadFloat32(tensor.Name, buffer);
        }, minSeconds: 2, maxRuns: 3);
        BenchReport.Line(new { bench = "safetensors-read", what = "mmap, bf16 to f32", threads = Environment.ProcessorCount, bytes = length, gbps = BenchReport.Round(length / mapped / 1e9) });

        var chunk = new byte[64 << 20];
        double plain = BenchReport.BestSeconds(() =>
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            while (stream.Read(chunk) > 0) { }
        }, minSeconds: 2, maxRuns: 3);
        BenchReport.Line(new { bench = "safetensors-read", what = "FileStream sequential read (no conversion)", threads = 1, bytes = length, gbps = BenchReport.Round(length / plain / 1e9) });
    }

    static void Write(string dir, float[] values)
    {
        using var writer = new SafetensorsWriter(dir);
        for (int t = 0; t < Tensors; t++)
            writer.AddFloat32($"model.layers.{t}.weight", [Elements / 4096, 4096], values, DType.BF16);
        writer.Finish();
    }

    static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }

    sealed class BenchDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("llmq-bench-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
