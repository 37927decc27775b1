using System.Diagnostics;
using Llmq.Checkpoints;
using Llmq.Formats.Gguf;

namespace Llmq.Bench;

/// <summary>
/// Issue 6's throughput target: converting the random 1B bf16 Llama (Llama-3.2-1B's shapes, no tokenizer, so the GGUF
/// gets llama.cpp's "no_vocab") to Q4_K_M against simply reading the same input once into float32, side by side in one
/// process, alternating, twice, after an untimed read that puts the input in the page cache. Wall and process CPU
/// seconds per step; the target is convert throughput ≥ 1/3 of read throughput. bench/gguf/run.sh runs both as separate
/// processes under GNU time for peak RSS.
/// </summary>
static class GgufConvertBench
{
    static string Output => Path.Combine(Path.GetDirectoryName(QuantizeBench.ModelDir)!, "llama1b-Q4_K_M.gguf");

    public static void Run()
    {
        QuantizeBench.Make();
        long inputBytes;
        using (var c = Checkpoint.Open(QuantizeBench.ModelDir)) inputBytes = c.Tensors.Sum(t => t.ByteLength);
        // an untimed read first, so that both steps start with the input in the page cache (else whichever runs first
        // pays the disk, and the ratio measures the disk)
        ReadOnce();
        double bestRead = double.MaxValue, bestConvert = double.MaxValue;
        for (int run = 1; run <= 2; run++)
        {
            var read = Time(ReadOnce);
            Report("read-once", run, read, inputBytes);
            long outputBytes = 0;
            // to a fresh path, as the read writes nothing: replacing the last run's file would time its unlink too
            // (about 0.3 s for the 0.8 GB here), which is the file system's work, not the conversion's
            File.Delete(Output);
            var convert = Time(() => outputBytes = GgufConverter.Convert(QuantizeBench.ModelDir, Output,
                new GgufConvertOptions { FileType = GgufFileType.Q4_K_M, Overwrite = true }).OutputBytes);
            Report("convert-Q4_K_M", run, convert, inputBytes, outputBytes);
            bestRead = Math.Min(bestRead, read.Wall);
            bestConvert = Math.Min(bestConvert, convert.Wall);
        }
        BenchReport.Line(new
        {
            bench = "gguf-convert", step = "ratio", read_best_s = BenchReport.Round(bestRead), convert_best_s = BenchReport.Round(bestConvert),
            throughput_ratio = BenchReport.Round(bestRead / bestConvert, 3), target = BenchReport.Round(1 / 3.0, 3),
        });
    }

    /// <summary>One core, the Q4_K_M block kernels on random rows of 2048: the scalar reference (one sub-block search after
    /// another) against the lane-parallel form, in million weights per CPU second.</summary>
    public static void RunKernels()
    {
        const int cols = 2048, rows = 2048;
        var x = BenchReport.RandomMatrix((long)rows * cols, seed: 6);
        foreach (var type in new[] { GgmlType.Q4_K, GgmlType.Q6_K })
        {
            var y = new byte[GgmlTypes.RowSize(type, cols)];
            void Rows(bool reference)
            {
                for (int r = 0; r < rows; r++)
                {
                    var row = x.AsSpan(r * cols, cols);
                    if (type == GgmlType.Q6_K)
                    {
                        if (reference) BlockQ6K.QuantizeRowReference(row, y, default);
                        else BlockQ6K.QuantizeRow(row, y, default);
                    }
                    else if (reference) BlockQ4K.QuantizeRowReference(row, y, default, 15, BlockQ4K.Q4KBytes);
                    else BlockQ4K.QuantizeRowQ4K(row, y, default);
                }
            }
            var scalar = BenchReport.Best(() => Rows(reference: true), maxRuns: 2);
            var lanes = BenchReport.Best(() => Rows(reference: false), maxRuns: 3);
            double weights = (double)rows * cols / 1e6;
            BenchReport.Line(new
            {
                bench = "gguf-kernels", type = GgmlTypes.Name(type),
                scalar_mweights_per_cpu_s = BenchReport.Round(weights / scalar.Cpu, 1), lanes_mweights_per_cpu_s = BenchReport.Round(weights / lanes.Cpu, 1),
                speedup_cpu = BenchReport.Round(scalar.Cpu / lanes.Cpu, 1), speedup_wall = BenchReport.Round(scalar.Wall / lanes.Wall, 1),
            });
        }
    }

    /// <summary>Every tensor read once and converted to float32 into one reused buffer.</summary>
    static void ReadOnce()
    {
        using var checkpoint = Checkpoint.Open(QuantizeBench.ModelDir);
        var buffer = GC.AllocateUninitializedArray<float>((int)checkpoint.Tensors.Max(t => t.ElementCount));
        foreach (var t in checkpoint.Tensors)
            checkpoint.ReadFloat32(t.Name, buffer.AsSpan(0, (int)t.ElementCount));
    }

    static BenchReport.Timing Time(Action action)
    {
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        action();
        double wall = clock.Elapsed.TotalSeconds;
        process.Refresh();
        return new(wall, (process.TotalProcessorTime - cpu).TotalSeconds);
    }

    static void Report(string step, int run, BenchReport.Timing t, long inputBytes, long outputBytes = 0) =>
        BenchReport.Line(new
        {
            bench = "gguf-convert", step, run, wall_s = BenchReport.Round(t.Wall), cpu_s = BenchReport.Round(t.Cpu),
            input_gb_per_s = BenchReport.Round(inputBytes / t.Wall / 1e9, 3), output_gb = BenchReport.Round(outputBytes / 1e9, 3),
        });
}
