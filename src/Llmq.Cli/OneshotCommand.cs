using System.CommandLine;
using System.Globalization;
using Llmq.Algorithms;
using Llmq.Calibration;

namespace Llmq.Cli;

/// <summary><c>llmq oneshot --model DIR (--recipe FILE | --scheme W4A16 --method gptq|rtn) [--dataset FILE] [--samples 128]
/// [--seq-len 512] [--format compressed-tensors|gptq] --output OUT [--overwrite]</c>: calibrate and quantize layer by layer.</summary>
internal static class OneshotCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory (safetensors)", Required = true };
        var output = new Option<string>("--output") { Description = "output directory (appears only when complete)", Required = true };
        var recipe = new Option<string?>("--recipe") { Description = "llm-compressor recipe YAML (GPTQModifier or QuantizationModifier)" };
        var scheme = new Option<string?>("--scheme") { Description = "preset scheme instead of a recipe: W4A16, W4A16_ASYM, W8A16, W8A8 (gptq or rtn); FP8, NVFP4, FP8_DYNAMIC, ... (rtn)" };
        var method = new Option<string>("--method") { Description = "with --scheme: gptq or rtn", DefaultValueFactory = _ => "gptq" };
        method.AcceptOnlyFromAmong("gptq", "rtn");
        var dataset = new Option<string?>("--dataset") { Description = "calibration text (txt, jsonl, parquet); default: the built-in text" };
        var samples = new Option<int>("--samples") { Description = "calibration samples", DefaultValueFactory = _ => 128 };
        var seqLen = new Option<int>("--seq-len") { Description = "tokens per calibration sample", DefaultValueFactory = _ => 512 };
        var format = new Option<string>("--format") { Description = "compressed-tensors or gptq", DefaultValueFactory = _ => "compressed-tensors" };
        format.AcceptOnlyFromAmong("compressed-tensors", "gptq");
        var overwrite = new Option<bool>("--overwrite") { Description = "replace an existing output directory" };
        var command = new Command("oneshot", "Quantize a model with GPTQ or round to nearest, calibrating layer by layer")
            { model, output, recipe, scheme, method, dataset, samples, seqLen, format, overwrite };
        command.SetAction((parse, cancellation) => CliErrors.RunAsync(parse.InvocationConfiguration.Error, () => Task.Run(() =>
        {
            var recipePath = parse.GetValue(recipe);
            var schemeName = parse.GetValue(scheme);
            if ((recipePath is null) == (schemeName is null)) throw new LlmqException("give either --recipe FILE or --scheme NAME");
            var plan = recipePath is not null ? Recipe.Load(recipePath)
                : Recipe.FromScheme(schemeName!, parse.GetValue(method) == "rtn" ? QuantizationMethod.Rtn : QuantizationMethod.Gptq);
            var o = parse.InvocationConfiguration.Output;
            var progress = new Progress(o);
            var result = Oneshot.Run(new OneshotOptions
            {
                Model = parse.GetValue(model)!, Output = parse.GetValue(output)!, Recipe = plan, Dataset = parse.GetValue(dataset),
                Samples = parse.GetValue(samples), SeqLen = parse.GetValue(seqLen), Overwrite = parse.GetValue(overwrite),
                Format = parse.GetValue(format) == "gptq" ? OutputFormat.Gptq : OutputFormat.CompressedTensors,
            }, progress, cancellation);
            var t = result.Timings;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {result.OutputPath}: {result.QuantizedModules} Linears, {result.Samples} samples, {result.Elapsed.TotalSeconds:F1} s " +
                $"(forward {t.Forward:F1} s, Hessian {t.Hessian:F1} s, input ranges {t.Ranges:F1} s, solve {t.Solve:F1} s, I/O {t.Io:F1} s)"));
            return 0;
        }, cancellation)));
        return command;
    }

    /// <summary>One line per layer with the time left; reported synchronously so lines stay in order.</summary>
    sealed class Progress(TextWriter output) : IProgress<OneshotProgress>
    {
        public void Report(OneshotProgress p) =>
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{p.Message}  [{p.Elapsed:hh\\:mm\\:ss} elapsed, ~{p.Remaining:hh\\:mm\\:ss} left]"));
    }
}
