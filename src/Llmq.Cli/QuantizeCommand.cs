using System.CommandLine;
using System.Globalization;
using Llmq.Calibration;
using Llmq.Quantization;
using Spectre.Console;

namespace Llmq.Cli;

/// <summary>
/// <c>llmq quantize --model DIR --scheme NAME --output OUT</c>: round-to-nearest into a compressed-tensors checkpoint.
/// <c>--ignore</c> adds to the default ignore list (<c>lm_head</c>); <c>--no-default-ignore</c> drops the default.
/// Schemes with static input scales (FP8, NVFP4) calibrate them on <c>--dataset</c> (default: the built-in text) through the
/// oneshot pipeline with RTN weights, what <c>llmq oneshot --scheme NVFP4 --method rtn</c> does; the others stream datafree.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "source model directory (config.json + safetensors)", Required = true };
        var scheme = new Option<string>("--scheme") { Description = $"preset: {string.Join(", ", SchemePresets.Names)}", Required = true };
        var output = new Option<string>("--output") { Description = "output directory (must not exist unless --overwrite)", Required = true };
        var targets = new Option<string[]>("--targets") { Description = "modules to quantize: class names, module names or re:regexes", DefaultValueFactory = _ => ["Linear"], AllowMultipleArgumentsPerToken = true };
        var ignore = new Option<string[]>("--ignore") { Description = "modules to leave alone, added to the default lm_head", DefaultValueFactory = _ => [], AllowMultipleArgumentsPerToken = true };
        var noDefaultIgnore = new Option<bool>("--no-default-ignore") { Description = "do not ignore lm_head by default" };
        var observer = new Option<string?>("--observer") { Description = "weight observer: minmax (default) or mse" };
        var overwrite = new Option<bool>("--overwrite") { Description = "replace an existing output directory" };
        var dataset = new Option<string?>("--dataset") { Description = "FP8 and NVFP4 only: calibration text for their static input scales (txt, jsonl, parquet); default: the built-in text" };
        var samples = new Option<int>("--samples") { Description = "FP8 and NVFP4 only: calibration samples", DefaultValueFactory = _ => 128 };
        var seqLen = new Option<int>("--seq-len") { Description = "FP8 and NVFP4 only: tokens per calibration sample", DefaultValueFactory = _ => 512 };
        var command = new Command("quantize", "Round-to-nearest quantization into a compressed-tensors checkpoint (vLLM, transformers); " +
            "FP8 and NVFP4 calibrate their static input scales on --dataset")
        {
            model, scheme, output, targets, ignore, noDefaultIgnore, observer, overwrite, dataset, samples, seqLen,
        };
        command.SetAction((parse, cancellation) => Task.FromResult(CliErrors.Run(parse.InvocationConfiguration.Error, () =>
        {
            var options = new QuantizeOptions
            {
                Scheme = parse.GetValue(scheme)!,
                Targets = parse.GetValue(targets)!,
                Ignore = parse.GetValue(ignore)!,
                DefaultIgnore = !parse.GetValue(noDefaultIgnore),
                WeightObserver = parse.GetValue(observer) switch { null or "minmax" => null, "mse" => "mse", var o => throw new LlmqException($"unknown observer '{o}' (minmax or mse)") },
                Overwrite = parse.GetValue(overwrite),
            };
            if (options.ResolveScheme().NeedsActivationStatistics)
                return Calibrated(parse, options, parse.GetValue(model)!, parse.GetValue(output)!, parse.GetValue(dataset), parse.GetValue(samples), parse.GetValue(seqLen), cancellation);
            foreach (var calibration in new Option[] { dataset, samples, seqLen })
                if (parse.GetResult(calibration) is { Implicit: false })
                    throw new LlmqException($"{options.Scheme} needs no calibration data (only schemes with static input scales do: FP8, NVFP4); " +
                        $"drop {calibration.Name}, or calibrate the weights with llmq oneshot --scheme {options.Scheme} --method gptq");
            var result = CliProgress.Run(parse.InvocationConfiguration.Output, "quantizing", report =>
                Quantizer.QuantizeModel(parse.GetValue(model)!, parse.GetValue(output)!, options,
                    new SyncProgress<QuantizeProgress>(p => report(p.Done, p.Total, p.Tensor)), cancellation));
            parse.InvocationConfiguration.Output.WriteLine(
                $"{result.OutputPath}: {result.QuantizedModules} modules as {options.Scheme}, ignored {result.Ignored.Count}; " +
                $"{result.InputBytes / 1e9:0.###} GB → {result.OutputBytes / 1e9:0.###} GB in {result.Elapsed.TotalSeconds:0.#} s");
            return 0;
        })));
        return command;
    }

    /// <summary>RTN weights with input scales from a calibration pass: the oneshot pipeline with the equivalent recipe.</summary>
    static int Calibrated(ParseResult parse, QuantizeOptions options, string model, string output, string? dataset, int samples, int seqLen,
        CancellationToken cancellation)
    {
        var o = parse.InvocationConfiguration.Output;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{options.Scheme} stores static input scales: calibrating them on {dataset ?? "the built-in calibration text"} (up to {samples} samples × {seqLen} tokens)"));
        var result = CliProgress.Run(o, "calibrating", report => Oneshot.Run(new OneshotOptions
        {
            Model = model, Output = output, Recipe = Recipe.FromQuantizeOptions(options), Dataset = dataset, Samples = samples, SeqLen = seqLen,
            Overwrite = options.Overwrite,
        }, new SyncProgress<OneshotProgress>(p => report(p.Layer, p.Layers, p.Message)), cancellation));
        var t = result.Timings;
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{result.OutputPath}: {result.QuantizedModules} modules as {options.Scheme}, {result.Samples} calibration samples; " +
            $"{result.Elapsed.TotalSeconds:0.##} s (forward {t.Forward:0.##} s, input ranges {t.Ranges:0.##} s, RTN {t.Solve:0.##} s, I/O {t.Io:0.##} s)"));
        return 0;
    }
}

/// <summary>A Spectre.Console progress bar when writing to a terminal; nothing extra when output is redirected or captured.</summary>
internal static class CliProgress
{
    public static T Run<T>(TextWriter output, string label, Func<Action<int, int, string>, T> work)
    {
        if (!ReferenceEquals(output, Console.Out) || Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return work((_, _, _) => { });
        T result = default!;
        AnsiConsole.Progress().AutoClear(true).Start(ctx =>
        {
            var task = ctx.AddTask(label);
            result = work((done, total, item) =>
            {
                task.MaxValue = total;
                task.Value = done;
                task.Description = $"{label} {Markup.Escape(item)}";
            });
        });
        return result;
    }
}

/// <summary>Reports on the calling thread (System.Progress posts to the thread pool and may report after the work ends).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
