using System.CommandLine;
using System.Text.Json;
using Llmq.Calibration;
using Llmq.Evaluation;
using Llmq.Tokenization;
using Spectre.Console;

namespace Llmq.Cli;

/// <summary><c>llmq eval --model DIR --dataset FILE [--seq-len 512] [--max-windows N] [--kl-base DIR]</c>:
/// perplexity over non-overlapping windows (and KL against a base model), any checkpoint Llmq reads.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "model directory (dense or quantized)", Required = true };
        var dataset = new Option<string>("--dataset") { Description = "text (.txt), JSON Lines (text/messages/input_ids) or Parquet file", Required = true };
        var seqLen = new Option<int>("--seq-len") { Description = "window length in tokens", DefaultValueFactory = _ => 512 };
        var maxWindows = new Option<int>("--max-windows") { Description = "evaluate only the first N windows (0: all)" };
        var klBase = new Option<string?>("--kl-base") { Description = "base model directory: also report mean KL(base ‖ model)" };
        var textField = new Option<string?>("--text-field") { Description = "JSON Lines / Parquet field holding the text" };
        var json = new Option<bool>("--json") { Description = "print the result as one JSON object" };
        var command = new Command("eval", "Perplexity (and KL divergence against a base model) on a dataset")
            { model, dataset, seqLen, maxWindows, klBase, textField, json };
        command.SetAction(parse => CliErrors.Run(parse.InvocationConfiguration.Error, () =>
        {
            var modelDir = parse.GetValue(model)!;
            var baseDir = parse.GetValue(klBase);
            var options = new PerplexityOptions { SeqLen = parse.GetValue(seqLen), MaxWindows = parse.GetValue(maxWindows) };
            var source = TextSource.Open(parse.GetValue(dataset)!, parse.GetValue(textField));
            // a .gguf file's tokenizer.json is looked for beside it
            var tokenizerDir = File.Exists(modelDir) ? Path.GetDirectoryName(Path.GetFullPath(modelDir))! : modelDir;
            var tokenizer = File.Exists(Path.Combine(tokenizerDir, "tokenizer.json")) ? ModelTokenizer.Load(tokenizerDir) : null;
            var tokens = Perplexity.TokenStream(source, tokenizer);

            using var evaluated = EvaluationModel.Open(modelDir);
            using var reference = baseDir is null ? null : EvaluationModel.Open(baseDir);
            var result = Run(new DecoderLogitsModel(evaluated.Model), tokens, options,
                             reference is null ? null : new DecoderLogitsModel(reference.Model));

            var o = parse.InvocationConfiguration.Output;
            double tokensPerSecond = result.TokensPerSecond(options.SeqLen);
            if (parse.GetValue(json))
            {
                o.WriteLine(JsonSerializer.Serialize(new
                {
                    model = modelDir, format = evaluated.Format, dataset = source.Name, tokens = tokens.Length,
                    seq_len = options.SeqLen, windows = result.Windows, scored_tokens = result.ScoredTokens,
                    mean_nll = result.MeanNll, perplexity = result.Perplexity, kl_base = baseDir, mean_kl = result.MeanKl,
                    seconds = result.Elapsed.TotalSeconds, tokens_per_second = tokensPerSecond,
                }));
                return 0;
            }
            o.WriteLine($"model       {modelDir} ({evaluated.Format})");
            o.WriteLine($"dataset     {source.Name}: {tokens.Length:N0} tokens, {result.Windows} windows of {options.SeqLen} ({result.ScoredTokens:N0} scored)");
            o.WriteLine($"perplexity  {result.Perplexity:F4} (mean NLL {result.MeanNll:F6})");
            if (result.MeanKl is double kl)
                o.WriteLine($"KL          {kl:F6} mean KL(base ‖ model) per token, base {baseDir}");
            o.WriteLine($"speed       {tokensPerSecond:N0} tokens/s ({result.Elapsed.TotalSeconds:F1} s)");
            return 0;
        }));
        return command;
    }

    /// <summary>Runs the evaluation under a progress bar on stderr (stdout keeps only the result).</summary>
    static PerplexityResult Run(ILogitsModel model, int[] tokens, PerplexityOptions options, ILogitsModel? baseModel)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        PerplexityResult? result = null;
        console.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("perplexity");
                var progress = new Progress<PerplexityProgress>(p =>
                {
                    task.MaxValue = p.Windows;
                    task.Value = p.WindowsDone;
                    double rate = p.WindowsDone * (double)options.SeqLen / Math.Max(p.Elapsed.TotalSeconds, 1e-9);
                    task.Description = $"ppl {Math.Exp(p.MeanNllSoFar):F3}, {rate:N0} tok/s";
                });
                result = Perplexity.Evaluate(model, tokens, options, baseModel, progress);
                task.Value = task.MaxValue;
            });
        return result!;
    }
}
