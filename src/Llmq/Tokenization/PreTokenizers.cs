using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Llmq.Tokenization;

/// <summary>One piece of text on its way to the BPE model; <see cref="AtStart"/> is true only for the piece
/// that begins the whole input (Metaspace's prepend_scheme "first" needs it).</summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>The tokenizer.json "pre_tokenizer" section: splits normalized text into the words BPE runs on
/// (Split with a regex, ByteLevel, Metaspace, Digits, and Sequences of them).</summary>
internal static class PreTokenizers
{
    const string Supported = "Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit";

    /// <summary>GPT-2's pattern, which ByteLevel uses when use_regex is true.</summary>
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static Func<Piece, IEnumerable<Piece>>? FromJson(JsonNode? node, string file)
    {
        if (node is not JsonObject o)
            return null;
        var type = (string?)o["type"];
        switch (type)
        {
            case "Sequence":
                var steps = (o["pretokenizers"] as JsonArray ?? []).Select(n => FromJson(n, file)).OfType<Func<Piece, IEnumerable<Piece>>>().ToArray();
                return piece =>
                {
                    IEnumerable<Piece> pieces = [piece];
                    foreach (var step in steps)
                        pieces = pieces.SelectMany(step).ToList();
                    return pieces;
                };
            case "Split":
                var pattern = o["pattern"]?["Regex"] is JsonValue r
                    ? new Regex((string)r!, RegexOptions.CultureInvariant)
                    : new Regex(Regex.Escape((string)o["pattern"]!["String"]!), RegexOptions.CultureInvariant);
                var behavior = (string?)o["behavior"] ?? "Isolated";
                if ((bool?)o["invert"] ?? false)
                    throw new LlmqException($"{file}: Split pre-tokenizer with invert=true is not supported");
                return piece => Split(piece, pattern, behavior, file);
            case "ByteLevel":
                bool addPrefixSpace = (bool?)o["add_prefix_space"] ?? true, useRegex = (bool?)o["use_regex"] ?? true;
                var gpt2 = new Regex(Gpt2Pattern, RegexOptions.CultureInvariant);
                return piece =>
                {
                    var text = addPrefixSpace && !piece.Text.StartsWith(' ') ? " " + piece.Text : piece.Text;
                    var words = useRegex ? Split(piece with { Text = text }, gpt2, "Isolated", file) : [piece with { Text = text }];
                    return words.Select(w => w with { Text = ByteLevelAlphabet.Encode(w.Text) });
                };
            case "Metaspace":
                var replacement = (string?)o["replacement"] ?? "▁";
                var scheme = (string?)o["prepend_scheme"] ?? (((bool?)o["add_prefix_space"] ?? true) ? "always" : "never");
                bool split = (bool?)o["split"] ?? true;
                return piece =>
                {
                    var text = piece.Text.Replace(" ", replacement, StringComparison.Ordinal);
                    if (!text.StartsWith(replacement, StringComparison.Ordinal)
                        && (scheme == "always" || (scheme == "first" && piece.AtStart)))
                        text = replacement + text;
                    return split ? SplitBefore(piece with { Text = text }, replacement) : [piece with { Text = text }];
                };
            case "Digits":
                var digits = new Regex((bool?)o["individual_digits"] ?? false ? @"\p{Nd}" : @"\p{Nd}+", RegexOptions.CultureInvariant);
                return piece => Split(piece, digits, "Isolated", file);
            case "Whitespace":
                var words = new Regex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant);
                return piece => words.Matches(piece.Text).Select(m => new Piece(m.Value, piece.AtStart && m.Index == 0));
            case "WhitespaceSplit":
                return piece => piece.Text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
                                          .Select((w, i) => new Piece(w, piece.AtStart && i == 0 && !char.IsWhiteSpace(piece.Text[0])));
            default:
                throw new LlmqException($"{file}: pre_tokenizer '{type}' is not supported (supported: {Supported})");
        }
    }

    /// <summary>Splits around regex matches, as Hugging Face's SplitDelimiterBehavior does.</summary>
    static List<Piece> Split(Piece piece, Regex regex, string behavior, string file)
    {
        var spans = new List<(int Start, int End, bool Match)>();
        int last = 0;
        foreach (Match m in regex.Matches(piece.Text))
        {
            if (m.Length == 0)
                continue;
            if (m.Index > last)
                spans.Add((last, m.Index, false));
            spans.Add((m.Index, m.Index + m.Length, true));
            last = m.Index + m.Length;
        }
        if (last < piece.Text.Length)
            spans.Add((last, piece.Text.Length, false));

        var merged = new List<(int Start, int End)>();
        switch (behavior)
        {
            case "Isolated":
                merged.AddRange(spans.Select(s => (s.Start, s.End)));
                break;
            case "Removed":
                merged.AddRange(spans.Where(s => !s.Match).Select(s => (s.Start, s.End)));
                break;
            case "MergedWithPrevious":
                foreach (var s in spans)
                {
                    if (s.Match && merged.Count > 0 && merged[^1].End == s.Start)
                        merged[^1] = (merged[^1].Start, s.End);
                    else
                        merged.Add((s.Start, s.End));
                }
                break;
            case "MergedWithNext":
                bool pendingMatch = false;
                foreach (var s in spans)
                {
                    if (pendingMatch && merged[^1].End == s.Start)
                        merged[^1] = (merged[^1].Start, s.End);
                    else
                        merged.Add((s.Start, s.End));
                    pendingMatch = s.Match;
                }
                break;
            case "Contiguous":
                bool previousMatch = false;
                foreach (var s in spans)
                {
                    if (s.Match && previousMatch)
                        merged[^1] = (merged[^1].Start, s.End);
                    else
                        merged.Add((s.Start, s.End));
                    previousMatch = s.Match;
                }
                break;
            default:
                throw new LlmqException($"{file}: Split behavior '{behavior}' is not supported");
        }
        return merged.Select(s => new Piece(piece.Text[s.Start..s.End], piece.AtStart && s.Start == 0)).ToList();
    }

    /// <summary>Metaspace split: each word begins at a replacement character.</summary>
    static IEnumerable<Piece> SplitBefore(Piece piece, string replacement)
    {
        var text = piece.Text;
        int start = 0;
        for (int i = 1; i < text.Length; i++)
        {
            if (string.CompareOrdinal(text, i, replacement, 0, replacement.Length) == 0)
            {
                yield return new Piece(text[start..i], piece.AtStart && start == 0);
                start = i;
            }
        }
        if (start < text.Length)
            yield return new Piece(text[start..], piece.AtStart && start == 0);
    }
}

/// <summary>GPT-2's reversible byte ↔ printable-character map used by byte-level BPE (Llama 3, Qwen2):
/// printable Latin-1 bytes stand for themselves, the other 68 bytes map to U+0100 onwards in byte order.</summary>
internal static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildTable();
    static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(p => p.c, p => p.Item2);

    static char[] BuildTable()
    {
        var table = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return table;
    }

    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++)
                dst[i] = ByteToChar[src[i]];
        });
    }

    /// <summary>Appends the bytes a byte-level token stands for; characters outside the alphabet pass through as UTF-8.</summary>
    public static void Decode(string token, List<byte> output)
    {
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var c in token)
        {
            if (CharToByte.TryGetValue(c, out var b))
                output.Add(b);
            else
            {
                int n = Encoding.UTF8.GetBytes([c], utf8);
                for (int i = 0; i < n; i++)
                    output.Add(utf8[i]);
            }
        }
    }
}
