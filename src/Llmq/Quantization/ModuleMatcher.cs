using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Llmq.Quantization;

/// <summary>
/// Decides which modules a set of config groups quantizes, as compressed-tensors / llm-compressor match them (spec §1.5).
/// A target or ignore entry is an exact module name, a <c>re:</c> regex (Python <c>re.match</c>: anchored at the start only)
/// or a class name (<c>Linear</c>, <c>Embedding</c>; we infer a module's class from its tensors). A module is quantized when
/// it matches a target of some group and no ignore entry. When several groups match, the chosen target is the first of
/// exact names, then regexes, then class names (each alphabetical); a target string that appears in two groups belongs to
/// the later group.
/// </summary>
public sealed class ModuleMatcher
{
    readonly IReadOnlyList<QuantizationScheme> groups;
    readonly string[] ignore;
    readonly ConcurrentDictionary<string, Regex> regexes = new(StringComparer.Ordinal);

    public ModuleMatcher(IReadOnlyList<QuantizationScheme> groups, IEnumerable<string> ignore)
    {
        this.groups = groups;
        this.ignore = ignore.ToArray();
        foreach (var t in groups.SelectMany(g => g.Targets).Concat(this.ignore))
            if (t.StartsWith("re:", StringComparison.Ordinal))
                regexes.GetOrAdd(t, Compile);   // compile (and reject bad patterns) up front
    }

    static Regex Compile(string target)
    {
        try
        {
            return new Regex("^(?:" + target[3..] + ")", RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new LlmqException($"invalid regular expression in target/ignore '{target}': {e.Message}");
        }
    }

    /// <summary>Whether a target or ignore entry matches module <paramref name="name"/> of class <paramref name="moduleClass"/>.</summary>
    public bool Matches(string entry, string name, string moduleClass) =>
        entry == name || (entry.StartsWith("re:", StringComparison.Ordinal) ? regexes.GetOrAdd(entry, Compile).IsMatch(name) : entry == moduleClass);

    public bool IsIgnored(string name, string moduleClass) => ignore.Any(e => Matches(e, name, moduleClass));

    /// <summary>The index of the config group that quantizes the module, or −1.</summary>
    public int GroupOf(string name, string moduleClass)
    {
        if (IsIgnored(name, moduleClass)) return -1;
        (int Kind, string Target, int Group)? best = null;
        for (int g = 0; g < groups.Count; g++)
        {
            foreach (var t in groups[g].Targets)
            {
                if (!Matches(t, name, moduleClass)) continue;
                int kind = t == name ? 0 : t.StartsWith("re:", StringComparison.Ordinal) ? 1 : 2;
                var c = (kind, t, g);
                if (best is not { } b || kind < b.Kind || (kind == b.Kind && string.CompareOrdinal(t, b.Target) < 0)
                    || (kind == b.Kind && t == b.Target && g > b.Group))
                    best = c;
            }
        }
        return best?.Group ?? -1;
    }

    /// <summary>
    /// The class compressed-tensors would see for a module, inferred from its weight: 2-D weights are <c>Linear</c> except
    /// embeddings (<c>embed_tokens</c>, <c>wte</c>, <c>word_embeddings</c>, …) which are <c>Embedding</c>; anything else
    /// (norms, biases-only modules, convolutions) is <c>Other</c> and never quantized.
    /// </summary>
    public static string ClassOf(string moduleName, int weightRank)
    {
        if (weightRank != 2) return "Other";
        string last = moduleName[(moduleName.LastIndexOf('.') + 1)..];
        return last is "embed_tokens" or "wte" or "wpe" or "word_embeddings" or "embeddings" or "tok_embeddings" ? "Embedding" : "Linear";
    }
}
