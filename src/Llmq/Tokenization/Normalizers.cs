using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Llmq.Tokenization;

/// <summary>The tokenizer.json "normalizer" section as one string → string function.</summary>
internal static class Normalizers
{
    const string Supported = "Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Lowercase, Strip";

    public static Func<string, string>? FromJson(JsonNode? node, string file)
    {
        if (node is not JsonObject o)
            return null;
        var type = (string?)o["type"];
        switch (type)
        {
            case "Sequence":
                var parts = (o["normalizers"] as JsonArray ?? []).Select(n => FromJson(n, file)).OfType<Func<string, string>>().ToArray();
                return s =>
                {
                    foreach (var p in parts)
                        s = p(s);
                    return s;
                };
            case "Prepend":
                var prefix = (string)o["prepend"]!;
                return s => s.Length == 0 ? s : prefix + s;
            case "Replace":
                var content = (string)o["content"]!;
                if (o["pattern"]?["String"] is JsonValue literal)
                {
                    var from = (string)literal!;
                    return s => s.Replace(from, content, StringComparison.Ordinal);
                }
                var regex = new Regex((string)o["pattern"]!["Regex"]!, RegexOptions.CultureInvariant);
                return s => regex.Replace(s, content);
            case "NFC": return s => Unicode(s, NormalizationForm.FormC);
            case "NFKC": return s => Unicode(s, NormalizationForm.FormKC);
            case "NFD": return s => Unicode(s, NormalizationForm.FormD);
            case "NFKD": return s => Unicode(s, NormalizationForm.FormKD);
            case "Lowercase": return s => s.ToLowerInvariant();
            case "Strip":
                bool left = (bool?)o["left"] ?? true, right = (bool?)o["right"] ?? true;
                return s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s;
            default:
                throw new LlmqException($"{file}: normalizer '{type}' is not supported (supported: {Supported})");
        }
    }

    /// <summary>Unicode normalization. ASCII is invariant under every form, so the common case never touches
    /// the normalization tables. Other text goes through .NET's own implementation; note that with
    /// InvariantGlobalization (our build) .NET returns non-ASCII text unchanged, which is exact for text already
    /// in the form (the usual case: NFC for Qwen2) and wrong only for decomposed input (e.g. "e" + U+0301).</summary>
    internal static string Unicode(string s, NormalizationForm form)
    {
        if (Ascii.IsValid(s))
            return s;
        try
        {
            return s.Normalize(form);
        }
        catch (PlatformNotSupportedException)
        {
            return s;
        }
    }
}
