using System.Text.Json;
using System.Text.Json.Nodes;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// The <c>quantization_config</c> block of config.json (spec §1.2): config groups named <c>group_i</c>, the explicit
/// ignore list, the global format (the one format, or "mixed-precision"), status "compressed". Also reads it back for
/// decompression.
/// </summary>
public static class QuantizationConfig
{
    /// <summary>The compressed-tensors version whose output we reproduce.</summary>
    public const string Version = "0.18.0";

    /// <summary>Builds the block for <paramref name="groups"/> (in order) and the explicit ignore list.</summary>
    public static JsonObject Build(IReadOnlyList<QuantizationScheme> groups, IEnumerable<string> ignore, QuantizationArgs? kvCacheScheme = null)
    {
        var configGroups = new JsonObject();
        for (int i = 0; i < groups.Count; i++)
            configGroups[$"group_{i}"] = groups[i].ToJson();
        var formats = groups.Select(g => g.ResolvedFormat).Where(f => f != CompressionFormat.Dense).Distinct().ToList();
        return new JsonObject
        {
            ["config_groups"] = configGroups,
            ["format"] = formats.Count switch { 0 => CompressionFormat.Dense, 1 => formats[0], _ => CompressionFormat.MixedPrecision },
            ["global_compression_ratio"] = null,
            ["ignore"] = new JsonArray(ignore.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["kv_cache_scheme"] = kvCacheScheme?.ToJson(),
            ["quant_method"] = "compressed-tensors",
            ["quantization_status"] = "compressed",
            ["sparsity_config"] = new JsonObject(),
            ["transform_config"] = new JsonObject(),
            ["version"] = Version,
        };
    }

    /// <summary>The config groups (in order) and ignore list of a compressed-tensors config.json block.</summary>
    public static (IReadOnlyList<QuantizationScheme> Groups, IReadOnlyList<string> Ignore, string Format) Parse(JsonObject block, string file)
    {
        if (block["quant_method"]?.GetValue<string>() != "compressed-tensors")
            throw new InvalidCheckpointException(file, null, "quantization_config is not compressed-tensors");
        if (block["config_groups"] is not JsonObject groups)
            throw new InvalidCheckpointException(file, null, "quantization_config has no config_groups");
        var format = block["format"]?.GetValue<string>() ?? CompressionFormat.Dense;
        var schemes = new List<QuantizationScheme>();
        foreach (var (name, node) in groups)
        {
            try
            {
                var scheme = QuantizationScheme.FromJson(node!);
                schemes.Add(scheme.Format is null && format != CompressionFormat.MixedPrecision ? scheme with { Format = format } : scheme);
            }
            catch (Exception e) when (e is LlmqException or InvalidOperationException or FormatException)
            {
                throw new InvalidCheckpointException(file, null, $"config group '{name}': {e.Message}");
            }
        }
        var ignore = block["ignore"] is JsonArray arr ? arr.Select(x => x!.GetValue<string>()).ToList() : [];
        return (schemes, ignore, format);
    }

    /// <summary>config.json with the block merged in, dumped as compressed-tensors does: indent 2, keys sorted at every level.</summary>
    public static string MergeIntoConfig(JsonObject config, JsonObject block)
    {
        var copy = (JsonObject)config.DeepClone();
        copy["quantization_config"] = block.DeepClone();
        return Sorted(copy)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }) + "\n";
    }

    static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sorted(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Sorted).ToArray()),
        null => null,
        _ => node.DeepClone(),
    };
}
