using System.CommandLine;
using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Formats.Gguf;

namespace Llmq.Cli;

/// <summary><c>llmq gguf --model DIR --type Q4_K_M --output model.gguf [--imatrix FILE | --dataset FILE] [--method gptq
/// [--dampening-frac F] [--block-size N]]</c>:
/// a Hugging Face Llama-family directory to a llama.cpp GGUF in one step (convert_hf_to_gguf.py + llama-imatrix +
/// llama-quantize), optionally with GPTQ-optimized Q4_0 / Q8_0 blocks.</summary>
internal static class GgufCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory", Required = true };
        var type = new Option<string>("--type") { Description = "llama.cpp file type: Q4_K_M, Q4_K_S, Q5_K_M, Q6_K, Q8_0, Q4_0, F16, …", DefaultValueFactory = _ => "Q4_K_M" };
        var output = new Option<string>("--output") { Description = "the .gguf file to write", Required = true };
        var imatrix = new Option<string?>("--imatrix") { Description = "llama.cpp importance matrix (GGUF or legacy .dat)" };
        var dataset = new Option<string?>("--dataset") { Description = "calibration text (txt, jsonl, parquet) to compute the importance matrix from" };
        var method = new Option<string>("--method")
        {
            Description = "ggml (llama.cpp's quantizers) or gptq (GPTQ on the Q4_0 / Q8_0 grid; calibrates on --dataset or the built-in text)",
            DefaultValueFactory = _ => "ggml",
        };
        method.AcceptOnlyFromAmong("ggml", "gptq");
        var dampening = new Option<double>("--dampening-frac")
        {
            Description = "with --method gptq: λ = this · mean(diag H) is added to each Hessian's diagonal",
            DefaultValueFactory = _ => new GptqOptions().DampeningFrac,
        };
        var blockSize = new Option<int>("--block-size")
        {
            Description = "with --method gptq: columns per lazy-update block", DefaultValueFactory = _ => new GptqOptions().BlockSize,
        };
        var samples = new Option<int>("--samples") { Description = "calibration samples", DefaultValueFactory = _ => 128 };
        var seqLen = new Option<int>("--seq-len") { Description = "tokens per calibration sample", DefaultValueFactory = _ => 512 };
        var overwrite = new Option<bool>("--overwrite") { Description = "replace an existing output file" };
        var command = new Command("gguf", "Convert a Hugging Face model to GGUF for llama.cpp, quantized with llama.cpp's block formats")
            { model, type, output, imatrix, dataset, method, dampening, blockSize, samples, seqLen, overwrite };
        command.SetAction(parse => CliErrors.Run(parse.InvocationConfiguration.Error, () =>
        {
            var o = parse.InvocationConfiguration.Output;
            var imatrixPath = parse.GetValue(imatrix);
            var datasetPath = parse.GetValue(dataset);
            bool gptq = parse.GetValue(method) == "gptq";
            foreach (var knob in new Option[] { dampening, blockSize })
                if (!gptq && parse.GetResult(knob) is { Implicit: false })
                    throw new LlmqException($"{knob.Name} applies to --method gptq only");
            var gptqOptions = new GptqOptions { DampeningFrac = parse.GetValue(dampening), BlockSize = parse.GetValue(blockSize) };
            if (!(gptqOptions.DampeningFrac >= 0 && double.IsFinite(gptqOptions.DampeningFrac)))
                throw new LlmqException($"--dampening-frac must be a finite number ≥ 0, got {gptqOptions.DampeningFrac}");
            if (gptqOptions.BlockSize <= 0) throw new LlmqException($"--block-size must be positive, got {gptqOptions.BlockSize}");
            var result = GgufConverter.Convert(parse.GetValue(model)!, parse.GetValue(output)!, new GgufConvertOptions
            {
                FileType = GgufTypePolicy.Parse(parse.GetValue(type)!),
                Imatrix = imatrixPath is null ? null : ImportanceMatrix.Load(imatrixPath),
                ImatrixFile = imatrixPath,
                Dataset = datasetPath is null ? null : TextSource.Open(datasetPath),
                Samples = parse.GetValue(samples),
                SeqLen = parse.GetValue(seqLen),
                Method = gptq ? GgufMethod.Gptq : GgufMethod.Ggml,
                Gptq = gptqOptions,
                Overwrite = parse.GetValue(overwrite),
            }, new SyncProgress<string>(o.WriteLine));
            foreach (var g in result.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key))
                o.WriteLine($"  {GgmlTypes.Name(g.Key),-6} {g.Count(),5} tensors {g.Sum(t => t.Bytes),14:N0} bytes");
            o.WriteLine($"wrote {result.Path}: {result.OutputBytes:N0} bytes from {result.InputBytes:N0} in {result.Elapsed.TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }
}
