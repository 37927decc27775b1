using Llmq.Checkpoints;

namespace Llmq.Bench;

/// <summary>Safetensors I/O on a ~1 GB bf16 checkpoint (16 tensors of 32M elements) in a temp directory:
/// <c>safetensors-write</c> times our writer (float32 → bf16 conversion + write, and raw bytes), plus RandomModel writing
/// Llama-3.2-1B's shapes (2.5 GB); <c>safetensors-read</c> times memory-mapped read + bf16 → f32 conversion of every tensor against a
/// plain sequential FileStream read of the same file, both with the file in the page cache. GB/s counts file bytes, per wall
/// second and per CPU-second (the build machine is shared).</summary>
static class SafetensorsBench
{
    const int Tensors = 16, Elements = 32 << 20;

    public static void RunWrite()
    {
        using var dir = new BenchDirectory();
        var values = BenchReport.RandomMatrix(Elements, 1);
        double fileBytes = 2.0 * Tensors * Elements;
        Report("safetensors-write", "f32 to bf16 and write", fileBytes, Once(() => Write(dir.Path, values)));

        var raw = new byte[2L * Elements];
        new Random(2).NextBytes(raw);
        Report("safetensors-write", "raw bytes", fileBytes, Once(() =>
        {
            using var writer = new SafetensorsWriter(dir.Path);
            for (int t = 0; t < Tensors; t++)
                writer.Add($"model.layers.{t}.weight", DType.BF16, [Elements / 4096, 4096], raw);
            writer.Finish();
        }));

        var spec = RandomModelSpec.Llama1B;
        Report("safetensors-write", "RandomModel Llama-3.2-1B shapes, bf16", 2.0 * spec.ParameterCount,
            Once(() => RandomModel.Write(Path.Combine(dir.Path, "llama"), spec, seed: 1)));
    }

    public static void RunRead()
    {
        using var dir = new BenchDirectory();
        Write(dir.Path, BenchReport.RandomMatrix(Elements, 1));
        var file = Path.Combine(dir.Path, "model.safetensors");
        long length = new FileInfo(file).Length;
        var buffer = new float[Elements];

        Report("safetensors-read", "mmap, bf16 to f32", length, BenchReport.Best(() =>
        {
            using var checkpoint = Checkpoint.Open(dir.Path);
            foreach (var tensor in checkpoint.Tensors)
                checkpoint.ReadFloat32(tensor.Name, buffer);
        }, minSeconds: 2, maxRuns: 3));

        var chunk = new byte[64 << 20];
        Report("safetensors-read", "FileStream sequential read, no conversion", length, BenchReport.Best(() =>
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            while (stream.Read(chunk) > 0) { }
        }, minSeconds: 2, maxRuns: 3));
    }

    static void Write(string dir, float[] values)
    {
        using var writer = new SafetensorsWriter(dir);
        for (int t = 0; t < Tensors; t++)
            writer.AddFloat32($"model.layers.{t}.weight", [Elements / 4096, 4096], values, DType.BF16);
        writer.Finish();
    }

    static BenchReport.Timing Once(Action action) => BenchReport.Best(action, maxRuns: 1, warmUp: false);

    static void Report(string bench, string what, double bytes, BenchReport.Timing t) =>
        BenchReport.Line(new
        {
            bench, what, bytes = (long)bytes, seconds = BenchReport.Round(t.Wall, 3), cpu_seconds = BenchReport.Round(t.Cpu, 3),
            gbps = BenchReport.Round(bytes / t.Wall / 1e9), gb_per_cpu_second = BenchReport.Round(bytes / t.Cpu / 1e9),
        });

    sealed class BenchDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("llmq-bench-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
