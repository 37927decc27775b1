using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// <c>recipe.yaml</c> as llm-compressor writes it next to a checkpoint (spec §5.1): one stage
/// <c>default_stage: {default_modifiers: {ClassName: {fields}}}</c>, null fields left out. When the source model already had a
/// recipe, both are kept and clashing stage names become <c>name_0</c>, <c>name_1</c>.
/// </summary>
public static class RecipeYaml
{
    public const string FileName = "recipe.yaml";

    /// <summary>A recipe for one modifier; <paramref name="fields"/> in the order they should appear (null values dropped).</summary>
    public static string Single(string modifier, IEnumerable<KeyValuePair<string, object?>> fields)
    {
        var body = new Dictionary<string, object>();
        foreach (var (k, v) in fields)
            if (v is not null) body[k] = v;
        var recipe = new Dictionary<string, object>
        {
            ["default_stage"] = new Dictionary<string, object> { ["default_modifiers"] = new Dictionary<string, object> { [modifier] = body } },
        };
        return new SerializerBuilder().Build().Serialize(recipe);
    }

    /// <summary>The recipe for a round-to-nearest QuantizationModifier run with a preset scheme.</summary>
    public static string ForQuantizationModifier(IReadOnlyList<string> targets, IReadOnlyList<string> ignore, string? scheme,
        IReadOnlyDictionary<string, object>? configGroups = null) =>
        Single("QuantizationModifier",
        [
            new("config_groups", configGroups),
            new("targets", targets.ToList()),
            new("ignore", ignore.ToList()),
            new("scheme", scheme),
            new("bypass_divisibility_checks", false),
        ]);

    /// <summary>Appends <paramref name="newRecipe"/>'s stages to an existing recipe, renaming clashing stage keys.</summary>
    public static string Combine(string existing, string newRecipe)
    {
        var merged = new Dictionary<string, object?>();
        var first = Load(existing);
        var second = Load(newRecipe);
        var clashes = first.Keys.Intersect(second.Keys).ToHashSet();
        foreach (var (k, v) in first) merged[clashes.Contains(k) ? k + "_0" : k] = v;
        foreach (var (k, v) in second) merged[clashes.Contains(k) ? k + "_1" : k] = v;
        return new SerializerBuilder().Build().Serialize(merged);
    }

    static Dictionary<string, object?> Load(string yaml)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new LlmqException($"recipe is not valid YAML: {e.Message}");
        }
        var result = new Dictionary<string, object?>();
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root) return result;
        foreach (var (k, v) in root.Children) result[((YamlScalarNode)k).Value!] = ToObject(v);
        return result;
    }

    static object? ToObject(YamlNode node) => node switch
    {
        YamlScalarNode s => s.Value,
        YamlSequenceNode seq => seq.Children.Select(ToObject).ToList(),
        YamlMappingNode map => map.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => ToObject(p.Value)),
        _ => null,
    };
}
