using System.CommandLine;
using Llmq.Quantization;
using Spectre.Console;

namespace Llmq.Cli;

/// <summary>
/// <c>llmq quantize --model DIR --scheme NAME --output OUT</c>: round-to-nearest into a compressed-tensors checkpoint.
/// <c>--ignore</c> adds to the default ignore list (<c>lm_head</c>); <c>--no-default-ignore</c> drops the default.
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
        var command = new Command("quantize", "Round-to-nearest quantization into a compressed-tensors checkpoint (vLLM, transformers)")
        {
            model, scheme, output, targets, ignore, noDefaultIgnore, observer, overwrite,
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
