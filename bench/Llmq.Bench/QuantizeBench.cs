using System.Diagnostics;
using Llmq.Checkpoints;
using Llmq.Quantization;

namespace Llmq.Bench;

/// <summary>
/// Round-to-nearest quantization of a random 1B bf16 Llama (Llama-3.2-1B's shapes, written by our writer) to W4A16 and to
/// NVFP4A16 (NVFP4's weight path; NVFP4 proper also needs calibrated input scales), beside reading the input once into
/// float32. The model lives in $LLMQ_BENCH_DIR (default /tmp/llmq-bench) and is made on first use. bench/quantize/run.sh
/// runs the same steps as separate processes under /usr/bin/time -v for peak RSS.
/// </summary>
static class QuantizeBench
{
    public static string Root => Environment.GetEnvironmentVariable("LLMQ_BENCH_DIR") ?? "/tmp/llmq-bench";
    public static string ModelDir => Path.Combine(Root, "llama1b-bf16");

    /// <summary>Makes the model when it is not there yet.</summary>
    public static void Make()
    {
        var spec = RandomModelSpec.Llama1B;
        if (!File.Exists(Path.Combine(ModelDir, "config.json")))
        {
            var clock = Stopwatch.StartNew();
            RandomModel.Write(ModelDir, spec, seed: 1);
            BenchReport.Line(new { bench = "quantize-model", model = ModelDir, parameters = spec.ParameterCount, write_s = BenchReport.Round(clock.Elapsed.TotalSeconds) });
        }
        else
            BenchReport.Line(new { bench = "quantize-model", model = ModelDir, parameters = spec.ParameterCount, existing = true });
    }

    /// <summary>The baseline: every tensor read once and converted to float32 into a reused buffer.</summary>
    public static void Read()
    {
        Make();
        var clock = Stopwatch.StartNew();
        using var checkpoint = Checkpoint.Open(ModelDir);
        var buffer = new float[checkpoint.Tensors.Max(t => t.ElementCount)];
        foreach (var t in checkpoint.Tensors)
            checkpoint.ReadFloat32(t.Name, buffer.AsSpan(0, (int)t.ElementCount));
        BenchReport.Line(new { bench = "read-model", bytes = checkpoint.Tensors.Sum(t => t.ByteLength), seconds = BenchReport.Round(clock.Elapsed.TotalSeconds) });
    }

    public static void Run()
    {
        Make();
        foreach (var scheme in new[] { "W4A16", "NVFP4A16" })
        {
            var output = Path.Combine(Root, "out-" + scheme.ToLowerInvariant());
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var result = Quantizer.QuantizeModel(ModelDir, output, new QuantizeOptions { Scheme = scheme, Overwrite = true });
            BenchReport.Line(new
            {
                bench = "quantize", scheme, modules = result.QuantizedModules,
                input_gb = BenchReport.Round(result.InputBytes / 1e9, 3), output_gb = BenchReport.Round(result.OutputBytes / 1e9, 3),
                seconds = BenchReport.Round(result.Elapsed.TotalSeconds),
                cpu_s = BenchReport.Round((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds),
            });
        }
    }
}
