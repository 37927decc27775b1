using System.Text.Json.Nodes;

namespace Llmq.Tokenization;

internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip);

/// <summary>tokenizer.json's added_tokens: matched in the raw text before normalization (longest match at the
/// leftmost position), so "&lt;|im_start|&gt;" or "&lt;s&gt;" written in a text become their single ids.</summary>
internal sealed class AddedTokens
{
    readonly Dictionary<int, AddedToken> _byId = [];
    readonly Dictionary<string, int> _byContent = new(StringComparer.Ordinal);
    readonly Dictionary<char, AddedToken[]> _byFirstChar = [];   // longest first

    public AddedTokens(JsonArray? json, string file)
    {
        foreach (var node in json ?? [])
        {
            var content = (string?)node?["content"];
            if (content is null || node!["id"] is not JsonValue idNode)
                throw new InvalidCheckpointException(file, null, "an added_tokens entry lacks 'id' or 'content'");
            var token = new AddedToken((int)idNode, content, (bool?)node["special"] ?? false,
                                       (bool?)node["lstrip"] ?? false, (bool?)node["rstrip"] ?? false);
            _byId[token.Id] = token;
            _byContent[content] = token.Id;
        }
        foreach (var group in _byId.Values.Where(t => t.Content.Length > 0).GroupBy(t => t.Content[0]))
            _byFirstChar[group.Key] = [.. group.OrderByDescending(t => t.Content.Length)];
    }

    public IEnumerable<AddedToken> All => _byId.Values;
    public int MaxId => _byId.Count == 0 ? -1 : _byId.Keys.Max();
    public bool TryGet(int id, out AddedToken token) => _byId.TryGetValue(id, out token!);
    public bool TryGet(string content, out int id) => _byContent.TryGetValue(content, out id);

    /// <summary>The text as alternating plain sections (AddedId null) and added tokens; lstrip/rstrip tokens
    /// swallow the whitespace beside them. Empty plain sections are dropped.</summary>
    public IEnumerable<(string Text, int? AddedId)> Split(string text)
    {
        if (_byFirstChar.Count == 0)
        {
            if (text.Length > 0)
                yield return (text, null);
            yield break;
        }
        int sectionStart = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!_byFirstChar.TryGetValue(text[i], out var candidates))
                continue;
            var match = candidates.FirstOrDefault(t => string.CompareOrdinal(text, i, t.Content, 0, t.Content.Length) == 0);
            if (match is null)
                continue;
            int sectionEnd = i;
            if (match.LStrip)
                while (sectionEnd > sectionStart && char.IsWhiteSpace(text[sectionEnd - 1]))
                    sectionEnd--;
            if (sectionEnd > sectionStart)
                yield return (text[sectionStart..sectionEnd], null);
            yield return (match.Content, match.Id);
            i += match.Content.Length;
            if (match.RStrip)
                while (i < text.Length && char.IsWhiteSpace(text[i]))
                    i++;
            sectionStart = i;
            i--;
        }
        if (sectionStart < text.Length)
            yield return (text[sectionStart..], null);
    }
}
