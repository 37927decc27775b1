namespace Llmq.Quantization;

/// <summary>
/// Sibling projections that vLLM loads as one fused tensor (spec §4.5, llm-compressor's <c>FUSED_LAYER_NAMES</c>):
/// q/k/v, gate/up, MLA q_a/kv_a, and MoE w1/w3. For NVFP4 every member of a set must carry the same
/// <c>weight_global_scale</c> = <c>2688 / max(amax of the members)</c> — the smallest of their individual global scales.
/// </summary>
public static class FusedLayers
{
    public static readonly IReadOnlyList<string[]> Sets =
    [
        ["q_proj", "k_proj", "v_proj"],
        ["gate_proj", "up_proj"],
        ["q_a_proj", "kv_a_proj_with_mqa"],
        ["w1", "w3"],
    ];

    /// <summary>Groups of module names (siblings under one parent) that form a complete fused set. A model that already
    /// stores a fused <c>qkv_proj</c>/<c>gate_up_proj</c> has no such groups and is left as is.</summary>
    public static List<string[]> FindSets(IEnumerable<string> moduleNames)
    {
        var names = new HashSet<string>(moduleNames, StringComparer.Ordinal);
        var result = new List<string[]>();
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            int dot = name.LastIndexOf('.');
            string parent = dot < 0 ? "" : name[..(dot + 1)], leaf = name[(dot + 1)..];
            foreach (var set in Sets)
            {
                if (leaf != set[0]) continue;
                var members = set.Select(m => parent + m).ToArray();
                if (members.All(names.Contains)) result.Add(members);
            }
        }
        return result;
    }

    /// <summary>
    /// Global scales for tensor_group modules: each module's own <c>2688 / amax</c>, replaced by the set's shared value when all
    /// members of a fused set are tensor_group modules. <paramref name="amax"/> maps module name → max |W| of its weight.
    /// </summary>
    public static Dictionary<string, float> GlobalScales(IReadOnlyDictionary<string, float> amax)
    {
        var result = amax.ToDictionary(p => p.Key, p => QParams.TensorGroupGlobalScale(p.Value), StringComparer.Ordinal);
        foreach (var set in FindSets(amax.Keys))
        {
            float shared = QParams.TensorGroupGlobalScale(set.Max(m => amax[m]));
            foreach (var m in set) result[m] = shared;
        }
        return result;
    }

    /// <summary>The fused sets that <paramref name="quantized"/> splits (some members quantized, some not) — vLLM refuses those.</summary>
    public static IEnumerable<string[]> SplitSets(IEnumerable<string> allModules, ISet<string> quantized) =>
        FindSets(allModules).Where(set => set.Any(quantized.Contains) && !set.All(quantized.Contains));
}
