using Llmq.Bench;

// Benchmarks by name: `dotnet run -c Release --project bench/Llmq.Bench -- <name>...`; no arguments lists them.
// Each bench prints one JSON object per result line (BenchReport.Line). Register a bench with one line here.
var benches = new (string Name, string Description, Action Run)[]
{
    ("fma-peak", "FMA throughput of a tight independent-accumulator loop, one core and all cores (GFLOP/s)", FmaPeakBench.Run),
    ("gemm", "GEMM GFLOP/s for 1024³, 4096³ and LLM shapes, one core and all cores, beside the FMA peak", GemmBench.Run),
    ("bf16", "bf16 <-> f32 bulk conversion GB/s, vectorized and scalar, in cache and from memory", BFloat16Bench.Run),
    ("safetensors-read", "memory-mapped read + bf16->f32 of a 1 GB checkpoint vs a plain sequential read (GB/s)", SafetensorsBench.RunRead),
    ("safetensors-write", "writer GB/s for 1 GB (f32->bf16 and raw), RandomModel 1B Llama seconds", SafetensorsBench.RunWrite),
    ("cholesky", "Cholesky factor, SPD inverse and GPTQ's upper factor of the inverse for n = 4096 and 11008", CholeskyBench.Run),
    ("quantize-model", "Make the random 1B bf16 Llama used by the quantize benches (once, in $LLMQ_BENCH_DIR)", QuantizeBench.Make),
    ("read-model", "Read the 1B model once into float32: the baseline for quantize", QuantizeBench.Read),
    ("quantize", "RTN W4A16 and NVFP4A16 of the random 1B bf16 Llama (seconds; bench/quantize/run.sh adds peak RSS)", QuantizeBench.Run),
    ("gptq-solve", "GPTQ W4A16 g128 of one Qwen2.5-0.5B layer per Linear shape, Cholesky beside it (wall, CPU s, GFLOP/s)", GptqSolveBench.Run),
    ("oneshot", "GPTQ W4A16 oneshot of a random Qwen2.5-0.5B-shaped model, 128 × 512 tokens, vs its FLOPs at measured GEMM speed", OneshotBench.Run),
    ("gguf-convert", "Random 1B bf16 Llama → Q4_K_M GGUF vs reading the input once, side by side twice (wall, CPU s, ratio)", GgufConvertBench.Run),
    ("gguf-kernels", "ggml block rows on one core, without and with importance: scalar reference vs lane-parallel kernels (M weights per CPU s)", GgufConvertBench.RunKernels),
    ("forward", "Decoder forward over 4 × 512 tokens of a random Qwen2.5-0.5B-shaped model vs its GEMMs alone (tokens/s, ratio)", ForwardBench.Run),
};

if (args.Length == 0)
{
    Console.WriteLine("usage: dotnet run -c Release --project bench/Llmq.Bench -- <bench>...");
    foreach (var b in benches) Console.WriteLine($"  {b.Name,-14} {b.Description}");
    return 0;
}
foreach (var name in args)
{
    var bench = benches.FirstOrDefault(b => b.Name == name);
    if (bench.Run is null)
    {
        Console.Error.WriteLine($"unknown bench '{name}'; run without arguments for the list");
        return 2;
    }
    bench.Run();
}
return 0;
