using Llmq.Bench;

// Benchmarks by name: `dotnet run -c Release --project bench/Llmq.Bench -- <name>...`; no arguments lists them.
// Each bench prints one JSON object per result line (BenchReport.Line). Register a bench with one line here.
var benches = new (string Name, string Description, Action Run)[]
{
    ("fma-peak", "FMA throughput of a tight independent-accumulator loop, one core and all cores (GFLOP/s)", FmaPeakBench.Run),
    ("gemm", "GEMM GFLOP/s for 1024³, 4096³ and LLM shapes, one core and all cores, beside the FMA peak", GemmBench.Run),
    ("cholesky", "Cholesky factor, SPD inverse and GPTQ's upper factor of the inverse for n = 4096 and 11008", CholeskyBench.Run),
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
