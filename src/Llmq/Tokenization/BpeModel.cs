using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;

namespace Llmq.Tokenization;

/// <summary>The "BPE" model of a Hugging Face tokenizer.json: a word (one pre-token) starts as one symbol per
/// character (unknown characters become &lt;0xNN&gt; byte tokens when byte_fallback is on, else the unk token),
/// then the adjacent pair with the lowest merge rank is merged, leftmost first, until no pair merges.
/// Written here rather than through Microsoft.ML.Tokenizers because its BpeTokenizer has no byte fallback,
/// so it cannot reproduce Llama 2 / Mistral ids from tokenizer.json.</summary>
internal sealed class BpeModel
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<long, (int Rank, int Id)> _merges;
    readonly int[] _byteIds;          // id of <0xNN> for each byte, or -1
    readonly int? _unkId;
    readonly bool _byteFallback, _fuseUnk, _ignoreMerges;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    const int CacheLimit = 200_000, CachedWordMaxLength = 64;

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges, string? unkToken,
                    bool byteFallback, bool fuseUnk, bool ignoreMerges, string file)
    {
        _vocab = vocab;
        _byteFallback = byteFallback;
        _fuseUnk = fuseUnk;
        _ignoreMerges = ignoreMerges;
        if (unkToken is not null && vocab.TryGetValue(unkToken, out var unk))
            _unkId = unk;
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            if (!vocab.TryGetValue(a, out var ia) || !vocab.TryGetValue(b, out var ib) || !vocab.TryGetValue(a + b, out var merged))
                throw new InvalidCheckpointException(file, null, $"BPE merge #{rank} '{a} {b}' refers to tokens missing from the vocabulary");
            _merges.TryAdd(Key(ia, ib), (rank, merged));
        }
    }

    public static BpeModel FromJson(JsonObject model, string file)
    {
        if (model["continuing_subword_prefix"] is JsonValue || model["end_of_word_suffix"] is JsonValue)
            throw new LlmqException($"{file}: BPE with continuing_subword_prefix/end_of_word_suffix is not supported");
        var vocabJson = model["vocab"] as JsonObject
            ?? throw new InvalidCheckpointException(file, null, "model.vocab is missing");
        var vocab = new Dictionary<string, int>(vocabJson.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabJson)
            vocab[token] = id!.GetValue<int>();
        var merges = new List<(string, string)>();
        foreach (var m in model["merges"] as JsonArray ?? [])
        {
            if (m is JsonArray pair && pair.Count == 2)
                merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
            else
            {
                // Older files store "a b"; a token never contains a plain space there (it is mapped to Ġ or ▁).
                var s = m!.GetValue<string>();
                int space = s.IndexOf(' ', 1);
                if (space < 0)
                    throw new InvalidCheckpointException(file, null, $"BPE merge '{s}' is not two tokens");
                merges.Add((s[..space], s[(space + 1)..]));
            }
        }
        return new BpeModel(vocab, merges, (string?)model["unk_token"],
            (bool?)model["byte_fallback"] ?? false, (bool?)model["fuse_unk"] ?? false,
            (bool?)model["ignore_merges"] ?? false, file);
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>Appends the ids of one pre-token.</summary>
    public void Encode(string word, List<int> output)
    {
        if (word.Length == 0)
            return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out var whole))
        {
            output.Add(whole);
            return;
        }
        if (word.Length <= CachedWordMaxLength && _cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        var ids = Merge(InitialSymbols(word));
        if (word.Length <= CachedWordMaxLength && _cache.Count < CacheLimit)
            _cache.TryAdd(word, ids);
        output.AddRange(ids);
    }

    List<int> InitialSymbols(string word)
    {
        var symbols = new List<int>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        bool previousUnk = false;
        for (int i = 0; i < word.Length;)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var ch = word.AsSpan(i, len);
            i += len;
            if (_vocab.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(ch, out var id))
            {
                symbols.Add(id);
                previousUnk = false;
                continue;
            }
            if (_byteFallback)
            {
                int n = Encoding.UTF8.GetBytes(ch, utf8);
                bool all = true;
                for (int b = 0; b < n; b++)
                    all &= _byteIds[utf8[b]] >= 0;
                if (all)
                {
                    for (int b = 0; b < n; b++)
                        symbols.Add(_byteIds[utf8[b]]);
                    previousUnk = false;
                    continue;
                }
            }
            if (_unkId is not int unk)
                throw new LlmqException($"character U+{char.ConvertToUtf32(ch.ToString(), 0):X4} is not in the tokenizer's vocabulary and it has no unk token");
            if (!(_fuseUnk && previousUnk))
                symbols.Add(unk);
            previousUnk = true;
        }
        return symbols;
    }

    int[] Merge(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2)
            return [.. symbols];
        var id = symbols.ToArray();
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        var alive = new bool[n];
        Array.Fill(alive, true);
        // (rank, position): equal ranks merge leftmost first, as in Hugging Face tokenizers.
        var queue = new PriorityQueue<int, (int Rank, int Pos)>();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(Key(id[i], id[i + 1]), out var m))
                queue.Enqueue(i, (m.Rank, i));
        while (queue.TryDequeue(out int pos, out var priority))
        {
            int right = next[pos];
            if (!alive[pos] || right < 0
                || !_merges.TryGetValue(Key(id[pos], id[right]), out var m) || m.Rank != priority.Rank)
                continue;   // stale entry: one side was merged away since it was queued
            id[pos] = m.Id;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] >= 0)
                prev[next[right]] = pos;
            if (prev[pos] >= 0 && _merges.TryGetValue(Key(id[prev[pos]], id[pos]), out var left))
                queue.Enqueue(prev[pos], (left.Rank, prev[pos]));
            if (next[pos] >= 0 && _merges.TryGetValue(Key(id[pos], id[next[pos]]), out var after))
                queue.Enqueue(pos, (after.Rank, pos));
        }
        var result = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i])
            result.Add(id[i]);
        return [.. result];
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;
}
