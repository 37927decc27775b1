using System.CommandLine;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Formats.Gguf;

namespace Llmq.Cli;

/// <summary><c>llmq decompress IN OUT [--dtype bf16|f16|f32]</c>: a dense checkpoint back from a compressed-tensors one
/// or from a llama .gguf file.</summary>
internal static class DecompressCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "compressed-tensors model directory or .gguf file" };
        var output = new Argument<string>("output") { Description = "dense output directory" };
        var dtype = new Option<string>("--dtype") { Description = "dtype of the dequantized weights: bf16, f16 or f32", DefaultValueFactory = _ => "bf16" };
        var overwrite = new Option<bool>("--overwrite") { Description = "replace an existing output directory" };
        var command = new Command("decompress", "Write a dense BF16/F16/F32 checkpoint from a compressed-tensors one or a GGUF file") { input, output, dtype, overwrite };
        command.SetAction(parse => CliErrors.Run(parse.InvocationConfiguration.Error, () =>
        {
            var type = parse.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "bf16" or "bfloat16" => DType.BF16,
                "f16" or "fp16" or "float16" => DType.F16,
                "f32" or "fp32" or "float32" => DType.F32,
                var d => throw new LlmqException($"unknown dtype '{d}' (bf16, f16 or f32)"),
            };
            var inputPath = parse.GetValue(input)!;
            if (File.Exists(inputPath) && inputPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            {
                var dir = CliProgress.Run(parse.InvocationConfiguration.Output, "decompressing", report =>
                    GgufDecompressor.Decompress(inputPath, parse.GetValue(output)!, type, parse.GetValue(overwrite),
                        new SyncProgress<(int Done, int Total)>(p => report(p.Done, p.Total, ""))));
                parse.InvocationConfiguration.Output.WriteLine($"{dir}: GGUF dequantized to {type}");
                return 0;
            }
            var result = CliProgress.Run(parse.InvocationConfiguration.Output, "decompressing", report =>
                Decompressor.Decompress(parse.GetValue(input)!, parse.GetValue(output)!, type, parse.GetValue(overwrite),
                    progress: new SyncProgress<(int Done, int Total)>(p => report(p.Done, p.Total, ""))));
            parse.InvocationConfiguration.Output.WriteLine($"{result.OutputPath}: {result.DequantizedModules} modules dequantized to {type}, {result.OutputBytes / 1e9:0.###} GB");
            return 0;
        }));
        return command;
    }
}
