using System.Globalization;
using System.Text.Json.Nodes;
using Llmq.Algorithms;
using Llmq.Formats.CompressedTensors;
using Llmq.Quantization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Llmq.Calibration;

/// <summary>How a recipe's weights are quantized: round to nearest (<c>QuantizationModifier</c>) or GPTQ (<c>GPTQModifier</c>).</summary>
public enum QuantizationMethod { Rtn, Gptq }

/// <summary>
/// The one quantization modifier of an llm-compressor recipe (spec §5.1–5.3): <c>QuantizationModifier</c> (RTN) or
/// <c>GPTQModifier</c>, with <c>targets</c>, <c>ignore</c>, <c>scheme</c> (a preset name or {preset: targets}) or
/// <c>config_groups</c>, and GPTQ's <c>block_size</c>, <c>dampening_frac</c>, <c>actorder</c>. Recipes are YAML (or JSON)
/// with <c>*_stage</c> → <c>*_modifiers</c> → modifier mappings. Transforms (SmoothQuant, AWQ) and pruning are refused by name.
/// </summary>
public sealed record Recipe
{
    public required QuantizationMethod Method { get; init; }
    /// <summary>Config groups with the GPTQ <c>actorder</c> already applied to their weight args.</summary>
    public required IReadOnlyList<QuantizationScheme> Groups { get; init; }
    public IReadOnlyList<string> Ignore { get; init; } = [];
    /// <summary>The preset name when the recipe used <c>scheme: NAME</c> (kept for the written recipe).</summary>
    public string? SchemeName { get; init; }
    public IReadOnlyList<string> Targets { get; init; } = ["Linear"];
    public GptqOptions Gptq { get; init; } = new();
    /// <summary>Allow a last group shorter than group_size (zero-padded), instead of refusing such layers.</summary>
    public bool BypassDivisibilityChecks { get; init; }

    public static readonly IReadOnlyList<string> DefaultIgnore = ["lm_head"];

    /// <summary>A preset applied to <c>Linear</c> minus lm_head, as <c>llmq oneshot --scheme</c> does.</summary>
    public static Recipe FromScheme(string scheme, QuantizationMethod method, GptqOptions? gptq = null, IReadOnlyList<string>? ignore = null)
    {
        gptq ??= new GptqOptions();
        var group = SchemePresets.Get(scheme, ["Linear"]);
        return new Recipe
        {
            Method = method, SchemeName = scheme, Ignore = ignore ?? DefaultIgnore, Gptq = gptq,
            Groups = [method == QuantizationMethod.Gptq ? WithActOrder(group, gptq.ActOrder, explicitActOrder: false, "scheme") : group],
        };
    }

    /// <summary>The QuantizationModifier (RTN) equivalent of an <c>llmq quantize</c> run: its scheme (observer override included),
    /// targets and ignore list, for schemes whose static input scales need the calibrating pipeline.</summary>
    public static Recipe FromQuantizeOptions(QuantizeOptions options) => new()
    {
        Method = QuantizationMethod.Rtn, SchemeName = options.Scheme, Targets = options.Targets, Ignore = options.EffectiveIgnore,
        Groups = [options.ResolveScheme()],
    };

    public static Recipe Load(string path)
    {
        if (!File.Exists(path)) throw new LlmqException($"{path}: recipe file not found");
        var text = File.ReadAllText(path);
        if (path.EndsWith(".md", StringComparison.OrdinalIgnoreCase))
        {
            var parts = text.Split("---", 3);
            if (parts.Length < 3) throw new LlmqException($"{path}: a markdown recipe needs YAML front matter between --- lines");
            text = parts[1];
        }
        return Parse(text, path);
    }

    /// <summary>Parses recipe YAML (JSON is YAML too); <paramref name="source"/> names it in errors.</summary>
    public static Recipe Parse(string yaml, string source)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e) { throw new LlmqException($"{source}: not valid YAML: {e.Message}"); }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new LlmqException($"{source}: a recipe is a mapping of *_stage keys");

        var modifiers = new List<(string Name, YamlMappingNode Body)>();
        foreach (var (stageKey, stage) in root.Children)
        {
            if (!Scalar(stageKey).EndsWith("_stage", StringComparison.Ordinal)) continue;
            if (stage is not YamlMappingNode stageMap) throw new LlmqException($"{source}: stage '{Scalar(stageKey)}' is not a mapping");
            foreach (var (groupKey, group) in stageMap.Children)
            {
                if (!Scalar(groupKey).EndsWith("_modifiers", StringComparison.Ordinal)) continue;
                if (group is not YamlMappingNode groupMap) throw new LlmqException($"{source}: '{Scalar(groupKey)}' is not a mapping");
                foreach (var (name, body) in groupMap.Children)
                    modifiers.Add((Scalar(name), body as YamlMappingNode ?? new YamlMappingNode()));
            }
        }
        if (modifiers.Count == 0) throw new LlmqException($"{source}: no modifiers found (expected <name>_stage → <name>_modifiers → GPTQModifier / QuantizationModifier)");
        var unsupported = modifiers.Where(m => m.Name is not ("GPTQModifier" or "QuantizationModifier")).Select(m => m.Name).ToList();
        if (unsupported.Count > 0) throw new LlmqException($"{source}: modifier(s) {string.Join(", ", unsupported)} are not supported (only GPTQModifier and QuantizationModifier)");
        if (modifiers.Count > 1) throw new LlmqException($"{source}: one quantization modifier per recipe is supported, found {modifiers.Count}");
        return FromModifier(modifiers[0].Name, modifiers[0].Body, source);
    }

    static Recipe FromModifier(string name, YamlMappingNode body, string source)
    {
        var fields = body.Children.ToDictionary(p => Scalar(p.Key), p => p.Value);
        string Where(string field) => $"{source}: {name}.{field}";
        var known = new HashSet<string> { "targets", "ignore", "scheme", "config_groups", "block_size", "dampening_frac", "actorder",
            "bypass_divisibility_checks", "offload_hessians", "index", "group", "start", "end", "update", "kv_cache_scheme" };
        foreach (var key in fields.Keys.Where(k => !known.Contains(k)))
            throw new LlmqException($"{Where(key)}: unknown or unsupported field");
        if (fields.TryGetValue("kv_cache_scheme", out var kv) && !IsNull(kv))
            throw new LlmqException($"{Where("kv_cache_scheme")}: KV-cache quantization is not supported");

        var method = name == "GPTQModifier" ? QuantizationMethod.Gptq : QuantizationMethod.Rtn;
        var targets = fields.TryGetValue("targets", out var t) ? StringList(t, Where("targets")) : ["Linear"];
        var ignore = fields.TryGetValue("ignore", out var ig) ? StringList(ig, Where("ignore")) : [];
        var gptq = new GptqOptions
        {
            BlockSize = fields.TryGetValue("block_size", out var bs) ? Int(bs, Where("block_size")) : 128,
            DampeningFrac = fields.TryGetValue("dampening_frac", out var df) ? Double(df, Where("dampening_frac")) : 0.01,
        };
        ActOrder? explicitActOrder = fields.TryGetValue("actorder", out var ao) ? ParseActOrder(ao, Where("actorder")) : null;
        gptq = gptq with { ActOrder = explicitActOrder ?? ActOrder.Static };

        string? schemeName = null;
        List<QuantizationScheme> groups;
        bool hasScheme = fields.TryGetValue("scheme", out var scheme) && !IsNull(scheme);
        bool hasGroups = fields.TryGetValue("config_groups", out var cg) && !IsNull(cg);
        if (hasScheme == hasGroups) throw new LlmqException($"{source}: {name} needs exactly one of 'scheme' and 'config_groups'");
        if (hasScheme)
        {
            if (scheme is YamlScalarNode s)
            {
                schemeName = s.Value!;
                groups = [Preset(schemeName, targets, Where("scheme"))];
            }
            else if (scheme is YamlMappingNode map)
                groups = map.Children.Select(p => Preset(Scalar(p.Key), StringList(p.Value, Where("scheme")), Where("scheme"))).ToList();
            else throw new LlmqException($"{Where("scheme")}: expected a preset name or a mapping preset → targets");
        }
        else
        {
            if (cg is not YamlMappingNode map) throw new LlmqException($"{Where("config_groups")}: expected a mapping name → scheme");
            groups = [];
            foreach (var (key, value) in map.Children)
            {
                try { groups.Add(QuantizationScheme.FromJson(ToJson(value)!) with { }); }
                catch (Exception e) when (e is LlmqException or InvalidOperationException or FormatException)
                {
                    throw new LlmqException($"{Where("config_groups")}.{Scalar(key)}: {e.Message}");
                }
            }
            groups = groups.Select(g => g with { Weights = g.Weights?.Validated() }).ToList();
        }
        if (method == QuantizationMethod.Gptq)
            groups = groups.Select(g => WithActOrder(g, gptq.ActOrder, explicitActOrder is not null, Where("actorder"))).ToList();
        return new Recipe
        {
            Method = method, Groups = groups, Ignore = ignore, SchemeName = schemeName, Targets = targets, Gptq = gptq,
            BypassDivisibilityChecks = fields.TryGetValue("bypass_divisibility_checks", out var bp) && Bool(bp, Where("bypass_divisibility_checks")),
        };
    }

    /// <summary>GPTQModifier's <c>actorder</c> goes into weight args that have none (spec §5.3); a conflicting explicit value is an error.</summary>
    static QuantizationScheme WithActOrder(QuantizationScheme group, ActOrder actOrder, bool explicitActOrder, string where)
    {
        if (group.Weights is not { } w) return group;
        if (w.ActOrder is { } own)
        {
            if (explicitActOrder && ParseActOrder(new YamlScalarNode(own), where) != actOrder)
                throw new LlmqException($"{where}: '{Name(actOrder)}' conflicts with the scheme's own actorder '{own}'");
            return group;
        }
        var grouped = w.ResolvedStrategy is QuantizationStrategy.Group or QuantizationStrategy.TensorGroup;
        var value = actOrder == ActOrder.Group && !grouped ? ActOrder.None : actOrder;
        return group with { Weights = w with { ActOrder = value == ActOrder.None ? null : Name(value) } };
    }

    /// <summary>The GPTQ activation order a weight's args ask for.</summary>
    public static ActOrder ActOrderOf(QuantizationArgs args) => args.ActOrder switch
    {
        null => ActOrder.None,
        "static" or "weight" => ActOrder.Static,
        "group" or "dynamic" => ActOrder.Group,
        var other => throw new LlmqException($"unknown actorder '{other}'"),
    };

    static string Name(ActOrder a) => a switch { ActOrder.Static => "static", ActOrder.Group => "group", _ => "null" };

    static ActOrder ParseActOrder(YamlNode node, string where) => IsNull(node) ? ActOrder.None : Scalar(node).ToLowerInvariant() switch
    {
        "static" or "weight" => ActOrder.Static,
        "group" or "dynamic" or "true" => ActOrder.Group,
        "false" => ActOrder.None,
        var other => throw new LlmqException($"{where}: '{other}' is not one of static, weight, group, dynamic, null"),
    };

    static QuantizationScheme Preset(string name, IReadOnlyList<string> targets, string where) =>
        SchemePresets.Exists(name) ? SchemePresets.Get(name, targets)
        : throw new LlmqException($"{where}: unknown preset '{name}' (known: {string.Join(", ", SchemePresets.Names)})");

    /// <summary>The recipe.yaml written beside the output (spec §5.1: the modifier's fields, defaults included).</summary>
    public string ToYaml()
    {
        object? configGroups = SchemeName is null
            ? Groups.Select((g, i) => (Key: $"group_{i}", Value: (object)ToPlain(g.ToJson())!)).ToDictionary(p => p.Key, p => p.Value)
            : null;
        if (Method == QuantizationMethod.Rtn)
            return RecipeYaml.ForQuantizationModifier(Targets, Ignore, SchemeName, (IReadOnlyDictionary<string, object>?)configGroups);
        return RecipeYaml.Single("GPTQModifier",
        [
            new("config_groups", configGroups),
            new("targets", Targets.ToList()),
            new("ignore", Ignore.ToList()),
            new("scheme", SchemeName),
            new("bypass_divisibility_checks", BypassDivisibilityChecks),
            new("block_size", Gptq.BlockSize),
            new("dampening_frac", Gptq.DampeningFrac),
            new("actorder", Gptq.ActOrder == ActOrder.None ? null : Name(Gptq.ActOrder)),
            new("offload_hessians", false),
        ]);
    }

    static object? ToPlain(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.Where(p => p.Value is not null).ToDictionary(p => p.Key, p => ToPlain(p.Value)!),
        JsonArray a => a.Select(ToPlain).ToList(),
        JsonValue v => v.ToString(),
        _ => null,
    };

    static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(p => KeyValuePair.Create(Scalar(p.Key), ToJson(p.Value)))),
        YamlSequenceNode s => new JsonArray(s.Children.Select(ToJson).ToArray()),
        YamlScalarNode s when IsNull(s) => null,
        // int before long: QuantizationArgs reads num_bits/group_size as int, and a JsonValue made from a long won't convert.
        YamlScalarNode s when s.Style == ScalarStyle.Plain && int.TryParse(s.Value, CultureInfo.InvariantCulture, out var i) => JsonValue.Create(i),
        YamlScalarNode s when s.Style == ScalarStyle.Plain && long.TryParse(s.Value, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
        YamlScalarNode s when s.Style == ScalarStyle.Plain && double.TryParse(s.Value, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
        YamlScalarNode s when s.Style == ScalarStyle.Plain && bool.TryParse(s.Value, out var b) => JsonValue.Create(b),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };

    static bool IsNull(YamlNode node) => node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "null" or "~" or "None" };

    static string Scalar(YamlNode node) => node is YamlScalarNode s ? s.Value ?? "" : throw new LlmqException($"expected a scalar at line {node.Start.Line}");

    static List<string> StringList(YamlNode node, string where) => node switch
    {
        YamlScalarNode s => [s.Value!],
        YamlSequenceNode seq => seq.Children.Select(c => Scalar(c)).ToList(),
        _ => throw new LlmqException($"{where}: expected a string or a list of strings"),
    };

    static int Int(YamlNode node, string where) =>
        int.TryParse(Scalar(node), CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new LlmqException($"{where}: expected a positive integer");

    static double Double(YamlNode node, string where) =>
        double.TryParse(Scalar(node), CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : throw new LlmqException($"{where}: expected a number ≥ 0");

    static bool Bool(YamlNode node, string where) =>
        bool.TryParse(Scalar(node), out var v) ? v : throw new LlmqException($"{where}: expected true or false");
}
