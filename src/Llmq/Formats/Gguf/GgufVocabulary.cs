using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Llmq.Checkpoints;

namespace Llmq.Formats.Gguf;

/// <summary>The tokenizer.ggml.* metadata of a Hugging Face model directory, as convert_hf_to_gguf.py writes it:
/// a SentencePiece-style vocabulary ('llama': tokens, scores, token types) or a byte-level BPE one ('gpt2': tokens,
/// token types, merges), the special-token ids, add_bos/add_eos and the chat template.</summary>
public static partial class GgufVocabulary
{
    // llama.cpp's token types
    const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    /// <summary>llama.cpp's tokenizer.ggml.model for a model without vocabulary (LLAMA_VOCAB_TYPE_NONE).</summary>
    public const string NoVocabulary = "no_vocab";

    /// <summary>Adds the tokenizer metadata of <paramref name="modelDir"/> to <paramref name="writer"/>.
    /// <paramref name="vocabSize"/> (config.json's) pads a shorter vocabulary with unused [PADn] tokens.
    /// A directory with no tokenizer files at all gets tokenizer.ggml.model = "no_vocab": llama.cpp then loads the model
    /// with {arch}.vocab_size placeholder tokens and no tokenizer (token ids in, logits out). Returns whether a
    /// vocabulary was written.</summary>
    public static bool AddTo(GgufWriter writer, string modelDir, int vocabSize)
    {
        var tokenizerFile = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerFile))
        {
            // a vocabulary we cannot read must not silently become no vocabulary
            var unreadable = new[] { "tokenizer.model", "vocab.json", "tokenizer_config.json" }.FirstOrDefault(f => File.Exists(Path.Combine(modelDir, f)));
            if (unreadable is not null)
                throw new LlmqException($"{modelDir}: has {unreadable} but no tokenizer.json; GGUF export reads the vocabulary from tokenizer.json");
            writer.Add("tokenizer.ggml.model", GgufValue.Str(NoVocabulary));
            return false;
        }
        var tokenizer = ParseJson(tokenizerFile);
        var model = tokenizer["model"] as JsonObject ?? throw new InvalidCheckpointException(tokenizerFile, null, "no \"model\" object");
        var added = AddedTokens(tokenizer);
        var config = ReadOptional(Path.Combine(modelDir, "tokenizer_config.json"));
        var modelConfig = ReadOptional(Path.Combine(modelDir, "config.json"));

        bool byteLevel = (tokenizer["pre_tokenizer"]?.ToJsonString() + tokenizer["decoder"]?.ToJsonString()).Contains("\"ByteLevel\"");
        string[] tokens;
        if (byteLevel)
        {
            tokens = TokensById(model, added, vocabSize, tokenizerFile);
            var types = tokens.Select((t, id) => added.TryGetValue(id, out var a) ? (a.Special ? Control : UserDefined)
                : t.StartsWith("[PAD", StringComparison.Ordinal) && !Vocab(model).ContainsKey(t) ? Unused : Normal).ToArray();
            writer.Add("tokenizer.ggml.model", GgufValue.Str("gpt2"));
            writer.Add("tokenizer.ggml.pre", GgufValue.Str(PreTokenizerName(tokenizer)));
            writer.Add("tokenizer.ggml.tokens", GgufValue.Array(tokens));
            writer.Add("tokenizer.ggml.token_type", GgufValue.Array(types));
            writer.Add("tokenizer.ggml.merges", GgufValue.Array(Merges(model, tokenizerFile)));
        }
        else
        {
            var (spTokens, scores, types) = SentencePiece(modelDir, model, added, tokenizerFile);
            if (spTokens.Length < vocabSize)
            {
                // convert_hf_to_gguf.py pads a short SentencePiece vocabulary with unused [PADn] pieces
                int n = spTokens.Length;
                spTokens = [.. spTokens, .. Enumerable.Range(n, vocabSize - n).Select(i => $"[PAD{i}]")];
                scores = [.. scores, .. Enumerable.Repeat(-1000f, vocabSize - n)];
                types = [.. types, .. Enumerable.Repeat(Unused, vocabSize - n)];
            }
            tokens = spTokens;
            writer.Add("tokenizer.ggml.model", GgufValue.Str("llama"));
            writer.Add("tokenizer.ggml.pre", GgufValue.Str("default"));
            writer.Add("tokenizer.ggml.tokens", GgufValue.Array(tokens));
            writer.Add("tokenizer.ggml.scores", GgufValue.Array(scores));
            writer.Add("tokenizer.ggml.token_type", GgufValue.Array(types));
        }

        var ids = tokens.Select((t, i) => (t, i)).GroupBy(p => p.t).ToDictionary(g => g.Key, g => g.First().i);
        AddSpecial(writer, "bos", config, modelConfig, ids);
        AddSpecial(writer, "eos", config, modelConfig, ids);
        AddSpecial(writer, "unk", config, modelConfig, ids, key: "unknown");
        AddSpecial(writer, "pad", config, modelConfig, ids, key: "padding");
        foreach (var flag in new[] { "add_bos_token", "add_eos_token" })
            if (config?[flag] is JsonValue v && v.TryGetValue<bool>(out var b))
                writer.Add($"tokenizer.ggml.{flag}", GgufValue.Bool(b));
        if (config?["chat_template"] is JsonValue template && template.TryGetValue<string>(out var chat))
            writer.Add("tokenizer.chat_template", GgufValue.Str(chat));
        return true;
    }

    sealed record AddedToken(string Content, bool Special);

    static Dictionary<int, AddedToken> AddedTokens(JsonObject tokenizer)
    {
        var result = new Dictionary<int, AddedToken>();
        if (tokenizer["added_tokens"] is JsonArray list)
            foreach (var node in list.OfType<JsonObject>())
                if (node["id"] is JsonValue id && node["content"] is JsonValue content)
                    result[id.GetValue<int>()] = new AddedToken(content.GetValue<string>(), node["special"] is JsonValue s && s.GetValue<bool>());
        return result;
    }

    static JsonObject Vocab(JsonObject model) => model["vocab"] as JsonObject ?? [];

    /// <summary>Tokens by id (vocabulary and added tokens), padded with [PADn] up to vocabSize.</summary>
    static string[] TokensById(JsonObject model, Dictionary<int, AddedToken> added, int vocabSize, string file)
    {
        var byId = new Dictionary<int, string>();
        foreach (var (token, id) in Vocab(model))
            byId[id!.GetValue<int>()] = token;
        foreach (var (id, a) in added)
            byId[id] = a.Content;
        int count = Math.Max(vocabSize, byId.Count == 0 ? 0 : byId.Keys.Max() + 1);
        if (count == 0)
            throw new InvalidCheckpointException(file, null, "the vocabulary is empty");
        var tokens = new string[count];
        for (int i = 0; i < count; i++)
            tokens[i] = byId.TryGetValue(i, out var t) ? t : $"[PAD{i}]";
        return tokens;
    }

    /// <summary>A SentencePiece vocabulary: sp_vocab_scores.json when the directory ships one (the exact piece scores
    /// and types), else derived from tokenizer.json — byte pieces &lt;0xXX&gt;, control/unknown specials, and for the
    /// normal pieces score −k for the k-th one, which is the order SentencePiece's BPE trainer gives them (it reproduces
    /// sp_vocab_scores.json of both shared models).</summary>
    static (string[] Tokens, float[] Scores, int[] Types) SentencePiece(string dir, JsonObject model, Dictionary<int, AddedToken> added, string file)
    {
        var spFile = Path.Combine(dir, "sp_vocab_scores.json");
        if (File.Exists(spFile))
        {
            var sp = ParseJson(spFile);
            try
            {
                var tokens = sp["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToArray();
                var scores = sp["scores"]!.AsArray().Select(s => (float)s!.GetValue<double>()).ToArray();
                var types = sp["token_type"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
                if (scores.Length != tokens.Length || types.Length != tokens.Length)
                    throw new InvalidCheckpointException(spFile, null, "tokens, scores and token_type differ in length");
                return (tokens, scores, types);
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new InvalidCheckpointException(spFile, null, $"expected tokens, scores and token_type arrays ({e.Message})");
            }
        }
        var all = TokensById(model, added, 0, file);
        var unk = model["unk_token"] is JsonValue u ? u.GetValue<string>() : "<unk>";
        var outTypes = new int[all.Length];
        var outScores = new float[all.Length];
        int k = 0;
        for (int id = 0; id < all.Length; id++)
        {
            var t = all[id];
            outTypes[id] = t == unk ? Unknown
                : added.TryGetValue(id, out var a) ? (a.Special ? Control : UserDefined)
                : ByteToken().IsMatch(t) ? Byte : Normal;
            outScores[id] = outTypes[id] == Normal ? -(k++) : 0f;
        }
        return (all, outScores, outTypes);
    }

    [GeneratedRegex("^<0x[0-9A-Fa-f]{2}>$")]
    private static partial Regex ByteToken();

    static string[] Merges(JsonObject model, string file)
    {
        if (model["merges"] is not JsonArray merges)
            throw new InvalidCheckpointException(file, null, "byte-level BPE without merges");
        return merges.Select(m => m switch
        {
            JsonValue v => v.GetValue<string>(),
            JsonArray pair when pair.Count == 2 => $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}",
            _ => throw new InvalidCheckpointException(file, null, $"unreadable merge {m?.ToJsonString()}"),
        }).ToArray();
    }

    /// <summary>llama.cpp's name for the pre-tokenizer (convert_hf_to_gguf.py identifies it by hashing the encoding of a
    /// test text; we recognize the split regexes of the common families instead and fall back to "default").</summary>
    static string PreTokenizerName(JsonObject tokenizer)
    {
        var pre = tokenizer["pre_tokenizer"]?.ToJsonString() ?? "";
        if (pre.Contains(@"\\p{N}{1,3}", StringComparison.Ordinal)) return "llama-bpe";
        if (pre.Contains(@"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|", StringComparison.Ordinal)) return "qwen2";
        if (!pre.Contains("\"Split\"", StringComparison.Ordinal) && pre.Contains("\"ByteLevel\"", StringComparison.Ordinal)) return "gpt-2";
        return "default";
    }

    /// <summary>tokenizer.ggml.{key}_token_id from tokenizer_config.json's "{name}_token" (a string or {content}),
    /// else config.json's "{name}_token_id".</summary>
    static void AddSpecial(GgufWriter writer, string name, JsonObject? config, JsonObject? modelConfig, Dictionary<string, int> ids, string? key = null)
    {
        int? id = null;
        var node = config?[$"{name}_token"];
        var text = node switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonObject o when o["content"] is JsonValue c => c.GetValue<string>(),
            _ => null,
        };
        if (text is not null && ids.TryGetValue(text, out var found)) id = found;
        else if (modelConfig?[$"{name}_token_id"] is JsonValue n && n.TryGetValue<int>(out var fromConfig)) id = fromConfig;
        if (id is int value && value >= 0)
            writer.Add($"tokenizer.ggml.{key ?? name}_token_id", GgufValue.U32((uint)value));
    }

    static JsonObject? ReadOptional(string path) => File.Exists(path) ? ParseJson(path) : null;

    static JsonObject ParseJson(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidCheckpointException(path, null, "not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidCheckpointException(path, null, $"not well-formed JSON: {e.Message}");
        }
    }
}
