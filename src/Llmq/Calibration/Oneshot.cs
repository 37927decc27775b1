using System.Diagnostics;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Formats.Gptq;
using Llmq.Models;
using Llmq.Quantization;
using Llmq.Tokenization;

namespace Llmq.Calibration;

/// <summary>The on-disk layout <see cref="Oneshot"/> writes.</summary>
public enum OutputFormat { CompressedTensors, Gptq }

public sealed record OneshotOptions
{
    public required string Model { get; init; }
    public required string Output { get; init; }
    public required Recipe Recipe { get; init; }
    /// <summary>Calibration text (txt, jsonl, parquet); null = the built-in calibration text.</summary>
    public string? Dataset { get; init; }
    /// <summary>Calibration records given directly (e.g. token ids), instead of <see cref="Dataset"/>.</summary>
    public TextSource? Calibration { get; init; }
    public int Samples { get; init; } = 128;
    public int SeqLen { get; init; } = 512;
    public OutputFormat Format { get; init; } = OutputFormat.CompressedTensors;
    public bool Overwrite { get; init; }
    public long MaxShardBytes { get; init; } = SafetensorsWriter.DefaultMaxShardBytes;
}

public sealed record OneshotResult(string OutputPath, int QuantizedModules, int Samples, double TotalLoss, PipelineTimings Timings, TimeSpan Elapsed);

/// <summary>
/// <c>llmq oneshot</c> as a library call: open the model → plan which Linears get which scheme (and check them before any work)
/// → build calibration samples (when GPTQ or static input scales need them) → <see cref="SequentialPipeline"/> (layer by
/// layer: calibrate, quantize, propagate, emit) →
/// write the chosen format (compressed-tensors or GPTQ) with config.json, recipe.yaml and the tokenizer files. The output
/// directory appears only when complete; a failure or cancellation leaves nothing behind.
/// </summary>
public static class Oneshot
{
    public static OneshotResult Run(OneshotOptions options, IProgress<OneshotProgress>? progress = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        var recipe = options.Recipe;
        using var checkpoint = Checkpoint.Open(options.Model);
        using var model = new DecoderModel(checkpoint, ModelConfig.Load(options.Model), options.Model); // one mapping of the weights
        var plan = QuantizationPlan.Create(checkpoint.Tensors, model.Config, recipe.Groups, recipe.Ignore, recipe.BypassDivisibilityChecks);
        CheckFormat(options.Format, recipe, plan, checkpoint);

        var needsData = SequentialPipeline.NeedsData(recipe, plan);
        if (!needsData && options.Dataset is not null)
            throw new LlmqException($"{options.Dataset}: round to nearest with {SchemeText(recipe)} needs no calibration data (only GPTQ and static input scales do)");
        var samples = needsData ? BuildSamples(options) : [];
        var timings = new PipelineTimings();
        using var output = OutputDirectory.Create(options.Output, options.Overwrite);
        double totalLoss = 0;
        using (var writer = new SafetensorsWriter(output.Path, options.MaxShardBytes))
        {
            // Everything outside the decoder layers (embeddings, final norm, lm_head) is copied as it is.
            var layerPrefix = new System.Text.RegularExpressions.Regex(@"^model\.layers\.(\d+)\.");
            var byLayer = checkpoint.Tensors.GroupBy(t => layerPrefix.Match(t.Name) is { Success: true } m ? int.Parse(m.Groups[1].Value) : -1)
                .ToDictionary(g => g.Key, g => g.ToList());
            foreach (var t in byLayer.GetValueOrDefault(-1, []))
            {
                if (plan.Modules.ContainsKey(Module(t.Name)))
                    throw new LlmqException($"{Module(t.Name)} is outside the decoder layers; quantizing it is not supported (add it to ignore)");
                writer.Add(t.Name, t.DType, t.Shape, checkpoint.Bytes(t.Name));
                PageRelease.Release(checkpoint, t);
            }

            SequentialPipeline.Run(model, plan, recipe, samples,
                layer => checkpoint.Info($"model.layers.{layer}.self_attn.q_proj.weight").DType,
                (layer, quantized) =>
                {
                    var byModule = quantized.ToDictionary(q => q.Module);
                    foreach (var t in byLayer.GetValueOrDefault(layer, []))
                    {
                        var module = Module(t.Name);
                        if (byModule.TryGetValue(module, out var q))
                        {
                            if (t.Name.EndsWith(".weight", StringComparison.Ordinal)) WriteLinear(writer, options.Format, q);
                            else writer.Add(t.Name, t.DType, t.Shape, checkpoint.Bytes(t.Name)); // bias
                        }
                        else writer.Add(t.Name, t.DType, t.Shape, checkpoint.Bytes(t.Name));
                        PageRelease.Release(checkpoint, t);   // the layer is done: its input pages need not stay resident
                    }
                    totalLoss += quantized.Sum(q => q.Loss);
                }, timings, progress, cancellation);
            writer.Finish(new Dictionary<string, string>());
        }

        var io = Stopwatch.StartNew();
        var quantizationConfig = options.Format == OutputFormat.CompressedTensors ? plan.QuantizationConfigJson() : GptqConfig(recipe, plan).ToJson();
        Quantizer.WriteModelFiles(options.Model, output.Path, model.Config, quantizationConfig, recipe.ToYaml());
        if (options.Format == OutputFormat.Gptq)
            File.WriteAllText(Path.Combine(output.Path, GptqQuantizeConfig.FileName), GptqConfig(recipe, plan).ToJson().ToJsonString(new() { WriteIndented = true }));
        output.Publish();
        timings.Io += io.Elapsed.TotalSeconds;
        return new OneshotResult(output.FinalPath, plan.Modules.Count, samples.Length, totalLoss, timings, clock.Elapsed);
    }

    static string SchemeText(Recipe recipe) => recipe.SchemeName ?? "these config_groups";

    static string Module(string tensorName) => tensorName[..tensorName.LastIndexOf('.')];

    static int[][] BuildSamples(OneshotOptions options) =>
        BuildSamples(options.Model, options.Calibration ?? (options.Dataset is null ? CalibrationSet.BuiltIn : TextSource.Open(options.Dataset)),
            options.Samples, options.SeqLen);

    /// <summary>Calibration samples of <paramref name="seqLen"/> tokens from <paramref name="source"/>, tokenized with the
    /// model's tokenizer (also used by <c>llmq gguf</c>).</summary>
    public static int[][] BuildSamples(string modelDir, TextSource source, int samples, int seqLen)
    {
        // token-id records need no tokenizer; text without one fails in CalibrationSet with a clear message
        var tokenizer = File.Exists(Path.Combine(modelDir, "tokenizer.json")) ? ModelTokenizer.Load(modelDir) : null;
        var built = CalibrationSet.Build(source, tokenizer, new CalibrationOptions { Samples = samples, SeqLen = seqLen });
        if (built.Length == 0)
            throw new LlmqException($"{source.Name}: not enough text for one calibration sample of {seqLen} tokens");
        return built;
    }

    static void WriteLinear(SafetensorsWriter writer, OutputFormat format, QuantizedWeight q)
    {
        if (format == OutputFormat.CompressedTensors)
            LinearCompressors.For(q.Scheme.ResolvedFormat).Write(writer,
                new QuantizedLinear(q.Module, q.Scheme, q.QParams, q.Codes).WithInputs(q.Input, LinearCompressors.Precision(q.ModelDType)), q.ModelDType);
        else
            GptqLinear.Write(writer, q.Module, GptqLinear.Pack(q.Codes, q.QParams, q.Scheme.Weights!.NumBits));
    }

    /// <summary>The GPTQ layout holds one int weight-only scheme for every quantized Linear, in whole int32 words.</summary>
    static void CheckFormat(OutputFormat format, Recipe recipe, QuantizationPlan plan, Checkpoint checkpoint)
    {
        foreach (var (module, g) in plan.Modules)
        {
            var w = plan.Groups[g].Weights!;
            if (recipe.Method == QuantizationMethod.Gptq && (w.Type != QuantizationType.Int || w.ResolvedStrategy is not (QuantizationStrategy.Group or QuantizationStrategy.Channel)))
                throw new LlmqException($"{module}: GPTQ here quantizes int weights with group or channel strategy, not {w.Type} {QuantizationArgs.Name(w.ResolvedStrategy)}");
            if (format != OutputFormat.Gptq) continue;
            if (plan.Groups.Count != 1 || plan.Groups[0].InputActivations is not null || w.Type != QuantizationType.Int || w.NumBits is not (2 or 3 or 4 or 8))
                throw new LlmqException("--format gptq holds one int 2/3/4/8-bit weight-only scheme (e.g. W4A16, W4A16_ASYM, W8A16)");
            var shape = checkpoint.Info(module + ".weight").Shape;
            if (GptqLinear.Unsupported((int)shape[0], (int)shape[1], w.NumBits) is { } why)
                throw new LlmqException($"--format gptq: {module}: {why}");
        }
    }

    static GptqQuantizeConfig GptqConfig(Recipe recipe, QuantizationPlan plan)
    {
        var w = plan.Groups[0].Weights!;
        return new GptqQuantizeConfig(w.NumBits, w.ResolvedStrategy == QuantizationStrategy.Channel ? -1 : w.GroupSize!.Value,
            DescAct: Recipe.ActOrderOf(w) == Algorithms.ActOrder.Group, Sym: w.Symmetric, recipe.Gptq.DampeningFrac,
            StaticGroups: recipe.Gptq.GroupQParams == Algorithms.GroupQParams.BeforeSweep);
    }
}
