using System.Diagnostics;
using Llmq.Checkpoints;
using Llmq.Formats.Gguf;

namespace Llmq.Bench;

/// <summary>
/// Issue 6's throughput target: converting the random 1B bf16 Llama (Llama-3.2-1B's shapes, no tokenizer, so the GGUF
/// gets llama.cpp's "no_vocab") to Q4_K_M against simply reading the same input once into float32, side by side in one
/// process, alternating, twice, after an untimed read that puts the input in the page cache. Wall and process CPU
/// seconds per step; the target is convert throughput ≥ 1/3 of read throughput, against the faster of two reads into
/// float32 with the library's reader: each tensor whole into one buffer, or streamed through a reused buffer in the
/// converter's steps. For scale, a plain FileStream read of the file's bytes (no mapping, no conversion) is reported
/// beside them but not used in the ratio. bench/gguf/run.sh runs read and convert as separate processes under GNU time
/// for peak RSS.
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
            var streamed = Time(ReadOnceStreamed);
            Report("read-once-streamed", run, streamed, inputBytes);
            Report("read-bytes-filestream", run, Time(ReadBytes), inputBytes);
            long outputBytes = 0;
            // to a fresh path, as the read writes nothing: replacing the last run's file would time its unlink too
            // (about 0.3 s for the 0.8 GB here), which is the file system's work, not the conversion's
            File.Delete(Output);
            var convert = Time(() => outputBytes = GgufConverter.Convert(QuantizeBench.ModelDir, Output,
                new GgufConvertOptions { FileType = GgufFileType.Q4_K_M, Overwrite = true }).OutputBytes);
            Report("convert-Q4_K_M", run, convert, inputBytes, outputBytes);
            bestRead = Math.Min(bestRead, Math.Min(read.Wall, streamed.Wall));
            bestConvert = Math.Min(bestConvert, convert.Wall);
        }
        BenchReport.Line(new
        {
            bench = "gguf-convert", step = "ratio", read_best_s = BenchReport.Round(bestRead), convert_best_s = BenchReport.Round(bestConvert),
            throughput_ratio = BenchReport.Round(bestRead / bestConvert, 3), target = BenchReport.Round(1 / 3.0, 3),
        });
    }

    delegate void RowQuantizer(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance);

    /// <summary>The scalar reference quantizer of each lane-parallel block type.</summary>
    static readonly (GgmlType Type, RowQuantizer Reference)[] Kernels =
    [
        (GgmlType.Q4_K, (x, y, w) => BlockQ4K.QuantizeRowReference(x, y, w, 15, BlockQ4K.Q4KBytes)),
        (GgmlType.Q6_K, BlockQ6K.QuantizeRowReference),
        (GgmlType.Q2_K, BlockQ2K.QuantizeRowReference),
        (GgmlType.Q3_K, BlockQ3K.QuantizeRowReference),
        (GgmlType.Q4_0, BlockQ4.QuantizeRowQ4_0Reference),
        (GgmlType.Q4_1, BlockQ4.QuantizeRowQ4_1Reference),
        (GgmlType.Q5_0, BlockQ5.QuantizeRowQ5_0Reference),
        (GgmlType.Q5_1, BlockQ5.QuantizeRowQ5_1Reference),
    ];

    /// <summary>One core, the block kernels on random rows of 2048, without and with importance weights: the scalar
    /// reference (one block or sub-block search after another) against the lane-parallel form, in million weights per
    /// CPU second.</summary>
    public static void RunKernels()
    {
        const int cols = 2048, rows = 1024;
        var x = BenchReport.RandomMatrix((long)rows * cols, seed: 6);
        var rng = new Random(7);
        var weights = Enumerable.Range(0, cols).Select(_ => (float)rng.NextDouble() * 2).ToArray();
        var cases = Kernels.SelectMany(k => new[] { (k.Type, k.Reference, Importance: false), (k.Type, k.Reference, Importance: true) }).ToArray();
        // every kernel warmed up before any is timed: the scalar references are tiered code, and on one core (taskset)
        // their tier-1 compiles wait for time slices while the first kernels run
        foreach (var c in cases)
        {
            WarmUp(() => Rows(c, scalar: true));
            WarmUp(() => Rows(c, scalar: false));
        }
        foreach (var c in cases)
        {
            var scalarTime = BenchReport.Best(() => Rows(c, scalar: true), maxRuns: 2, warmUp: false);
            var lanes = BenchReport.Best(() => Rows(c, scalar: false), maxRuns: 3, warmUp: false);
            double mweights = (double)rows * cols / 1e6;
            BenchReport.Line(new
            {
                bench = "gguf-kernels", type = GgmlTypes.Name(c.Type), importance = c.Importance,
                scalar_mweights_per_cpu_s = BenchReport.Round(mweights / scalarTime.Cpu, 1),
                lanes_mweights_per_cpu_s = BenchReport.Round(mweights / lanes.Cpu, 1),
                speedup_cpu = BenchReport.Round(scalarTime.Cpu / lanes.Cpu, 1), speedup_wall = BenchReport.Round(scalarTime.Wall / lanes.Wall, 1),
            });
        }

        void Rows((GgmlType Type, RowQuantizer Reference, bool Importance) c, bool scalar)
        {
            int rowBytes = (int)GgmlTypes.RowSize(c.Type, cols);
            var y = KernelOutput(rows * rowBytes);
            var w = c.Importance ? weights : [];
            if (!scalar) GgmlQuants.QuantizeRowsSerial(c.Type, x, y, cols, w);   // as one task of a conversion runs them
            else
                for (int r = 0; r < rows; r++) c.Reference(x.AsSpan(r * cols, cols), y.Slice(r * rowBytes, rowBytes), w);
        }
    }

    static byte[] _output = [];
    static Span<byte> KernelOutput(int length) => (_output.Length >= length ? _output : _output = new byte[length]).AsSpan(0, length);

    static void WarmUp(Action action)
    {
        var clock = Stopwatch.StartNew();
        for (int run = 0; run < 2 || clock.Elapsed.TotalSeconds < 0.5; run++) action();
    }

    /// <summary>Every tensor read once and converted to float32 into one reused buffer.</summary>
    static void ReadOnce()
    {
        using var checkpoint = Checkpoint.Open(QuantizeBench.ModelDir);
        var buffer = GC.AllocateUninitializedArray<float>((int)checkpoint.Tensors.Max(t => t.ElementCount));
        foreach (var t in checkpoint.Tensors)
            checkpoint.ReadFloat32(t.Name, buffer.AsSpan(0, (int)t.ElementCount));
    }

    /// <summary>Every tensor read once into float32 through one reused buffer of the converter's step size.</summary>
    static void ReadOnceStreamed()
    {
        using var checkpoint = Checkpoint.Open(QuantizeBench.ModelDir);
        var buffer = GC.AllocateUninitializedArray<float>(GgufConverter.StreamElements);
        foreach (var t in checkpoint.Tensors)
            for (long first = 0; first < t.ElementCount; first += buffer.Length)
                checkpoint.ReadFloat32(t.Name, first, buffer.AsSpan(0, (int)Math.Min(buffer.Length, t.ElementCount - first)));
    }

    /// <summary>The checkpoint's files read as bytes with a FileStream: what the page cache hands out without mapping.</summary>
    static void ReadBytes()
    {
        var chunk = new byte[64 << 20];
        foreach (var file in Directory.GetFiles(QuantizeBench.ModelDir, "*.safetensors"))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            while (stream.Read(chunk) > 0) { }
        }
    }

    static BenchReport.Timing Time(Action action)
    {
        // the step before may leave a GB of garbage (the whole-tensor read's buffer): collected untimed, so no step pays
        // for another's heap
        GC.Collect();
        GC.WaitForPendingFinalizers();
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
