using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;

namespace Llmq.Quantization;

/// <summary>
/// Which module of a checkpoint gets which config group, decided and checked before any weight is touched: targets and
/// ignore matched as llm-compressor matches them, the explicit ignore list compressed-tensors writes (every Linear that is
/// not quantized, by name), and the pre-flight checks of spec §10.7 (group divisibility, FP4 column counts, fused sets not
/// split, weights in a float dtype). Shared by RTN (<see cref="Quantizer"/>) and calibration-based algorithms.
/// </summary>
public sealed class QuantizationPlan
{
    public IReadOnlyList<QuantizationScheme> Groups { get; }
    /// <summary>Quantized module name → index into <see cref="Groups"/>, in checkpoint order.</summary>
    public IReadOnlyDictionary<string, int> Modules { get; }
    /// <summary>Linear-type modules left unquantized, by explicit name (what <c>ignore</c> says in config.json).</summary>
    public IReadOnlyList<string> Ignored { get; }
    /// <summary>The ignore entries as the user gave them (for the recipe).</summary>
    public IReadOnlyList<string> IgnoreEntries { get; }

    QuantizationPlan(IReadOnlyList<QuantizationScheme> groups, Dictionary<string, int> modules, List<string> ignored, IReadOnlyList<string> ignoreEntries)
    {
        Groups = groups;
        Modules = modules;
        Ignored = ignored;
        IgnoreEntries = ignoreEntries;
    }

    public QuantizationScheme SchemeOf(string module) => Groups[Modules[module]];

    /// <summary>Whether some planned module's scheme stores static or "local" input scales, which calibration data must give
    /// (spec §5.2: then llm-compressor runs the sequential pipeline instead of the datafree one).</summary>
    public bool NeedsActivationStatistics => Modules.Values.Distinct().Any(g => Groups[g].NeedsActivationStatistics);

    /// <summary>Plans <paramref name="groups"/> over the weights in <paramref name="tensors"/>. A tied <c>lm_head</c> (no tensor of
    /// its own) still counts as an unquantized Linear, as it is a module of the model.
    /// <paramref name="bypassDivisibilityChecks"/> (llm-compressor's <c>bypass_divisibility_checks</c>) accepts input widths that
    /// are not a multiple of group_size: the last group is then zero-padded.</summary>
    public static QuantizationPlan Create(IReadOnlyList<TensorInfo> tensors, ModelConfig config, IReadOnlyList<QuantizationScheme> groups, IReadOnlyList<string> ignore,
        bool bypassDivisibilityChecks = false)
    {
        if (config.QuantizationConfig is not null)
            throw new LlmqException($"{config.Json["_name_or_path"]?.ToString() ?? "the model"} is already quantized (config.json has quantization_config); decompress it first");
        var matcher = new ModuleMatcher(groups, ignore);
        var modules = new Dictionary<string, int>(StringComparer.Ordinal);
        var ignored = new List<string>();
        var linears = new List<string>();
        foreach (var t in tensors)
        {
            if (!t.Name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            string module = t.Name[..^".weight".Length];
            string cls = ModuleMatcher.ClassOf(module, t.Shape.Length);
            if (cls == "Other") continue;
            if (cls == "Linear") linears.Add(module);
            int g = matcher.GroupOf(module, cls);
            if (g < 0)
            {
                if (cls == "Linear") ignored.Add(module);
                continue;
            }
            if (groups[g].Weights is not { } w) continue;
            Check(t, module, w, bypassDivisibilityChecks);
            CheckActivations(module, groups[g]);
            modules[module] = g;
        }
        if (config.TieWordEmbeddings && !tensors.Any(t => t.Name == "lm_head.weight"))
            ignored.Add("lm_head");
        if (modules.Count == 0)
            throw new LlmqException($"no module matches the targets [{string.Join(", ", groups.SelectMany(g => g.Targets))}] outside the ignore list");
        foreach (var set in FusedLayers.SplitSets(linears, modules.Keys.ToHashSet()))
            throw new LlmqException($"the ignore list splits the fused set [{string.Join(", ", set)}]; vLLM needs all of them quantized alike or all ignored");
        foreach (var set in FusedLayers.FindSets(modules.Keys))
            if (set.Select(m => modules[m]).Distinct().Count() > 1)
                throw new LlmqException($"the fused set [{string.Join(", ", set)}] would get different schemes; vLLM needs one scheme per fused layer");
        return new QuantizationPlan(groups, modules, ignored, ignore);
    }

    static void Check(TensorInfo t, string module, QuantizationArgs w, bool bypassDivisibilityChecks)
    {
        if (t.DType is not (DType.BF16 or DType.F16 or DType.F32))
            throw new InvalidCheckpointException(t.File, t.Name, $"is {t.DType}; only F32, F16 and BF16 weights can be quantized");
        long cols = t.Shape[1];
        int? need = w.ResolvedStrategy is QuantizationStrategy.Group or QuantizationStrategy.TensorGroup ? w.GroupSize : null;
        if (need is { } gs && cols % gs != 0 && !bypassDivisibilityChecks)
            throw new LlmqException($"{module}: {cols} input columns are not a multiple of group_size {gs}");
        if (w.Type == QuantizationType.Float && w.NumBits == 4 && cols % 2 != 0)
            throw new LlmqException($"{module}: FP4 needs an even number of input columns, not {cols}");
        if (t.Shape[0] * cols > Array.MaxLength)
            throw new LlmqException($"{module}: {t.ShapeText} is too large to quantize in one piece");
    }

    /// <summary>Stored input scales exist per tensor (static) or as NVFP4's global scale (local); output scales are not written.</summary>
    static void CheckActivations(string module, QuantizationScheme scheme)
    {
        if (scheme.InputActivations is { Dynamic: DynamicMode.Static } a && a.ResolvedStrategy != QuantizationStrategy.Tensor)
            throw new LlmqException($"{module}: static input quantization needs strategy tensor, not {QuantizationArgs.Name(a.ResolvedStrategy)} (or make it dynamic)");
        if (scheme.OutputActivations is not null)
            throw new LlmqException($"{module}: output activation quantization is not supported");
    }

    /// <summary>config.json's <c>quantization_config</c> for this plan.</summary>
    public JsonObject QuantizationConfigJson() => QuantizationConfig.Build(Groups, Ignored);
}
