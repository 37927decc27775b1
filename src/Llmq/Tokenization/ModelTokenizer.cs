using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llmq.Tokenization;

/// <summary>A model's tokenizer, read from its tokenizer.json (+ tokenizer_config.json), reproducing the ids
/// Hugging Face tokenizers produce: SentencePiece-style BPE with byte fallback (Llama 2, Mistral, llama2.c
/// models) and byte-level BPE behind a regex pre-tokenizer (Llama 3, Qwen2).
/// Pipeline per input: split out added tokens → normalizer → pre-tokenizer → BPE per word → post-processor
/// (bos/eos) when <c>addSpecial</c>. Thread-safe after loading.</summary>
public sealed class ModelTokenizer
{
    readonly BpeModel _model;
    readonly Func<string, string>? _normalizer;
    readonly Func<Piece, IEnumerable<Piece>>? _preTokenizer;
    readonly AddedTokens _added;
    readonly string[] _idToToken;
    readonly int[] _prefix, _suffix;          // what addSpecial puts around the text
    readonly bool _byteLevelDecoder, _byteFallbackDecoder;
    readonly string? _spaceReplacement;       // ▁ in SentencePiece-style vocabularies
    readonly int _stripLeadingSpaces;

    /// <summary>Beginning- and end-of-sequence token ids, when the tokenizer has them.</summary>
    public int? Bos { get; }
    public int? Eos { get; }
    /// <summary>Number of ids (highest id + 1, added tokens included).</summary>
    public int VocabSize => _idToToken.Length;
    /// <summary>tokenizer_config.json's chat_template (Jinja source), if any.</summary>
    public string? ChatTemplate { get; }

    ModelTokenizer(JsonObject json, JsonObject? config, string file)
    {
        var modelJson = json["model"] as JsonObject ?? throw new InvalidCheckpointException(file, null, "'model' is missing");
        var modelType = (string?)modelJson["type"] ?? "BPE";
        if (modelType != "BPE")
            throw new LlmqException($"{file}: tokenizer model '{modelType}' is not supported (supported: BPE)");
        _model = BpeModel.FromJson(modelJson, file);
        _normalizer = Normalizers.FromJson(json["normalizer"], file);
        _preTokenizer = PreTokenizers.FromJson(json["pre_tokenizer"], file);
        _added = new AddedTokens(json["added_tokens"] as JsonArray, file);

        int size = Math.Max(_model.Vocab.Count == 0 ? 0 : _model.Vocab.Values.Max() + 1, _added.MaxId + 1);
        _idToToken = new string[size];
        foreach (var (token, id) in _model.Vocab)
            _idToToken[id] = token;
        foreach (var t in _added.All)
            _idToToken[t.Id] = t.Content;

        Bos = SpecialId(config?["bos_token"]);
        Eos = SpecialId(config?["eos_token"]);
        ChatTemplate = config?["chat_template"] is JsonValue template ? (string?)template : null;
        (_prefix, _suffix) = PostProcessor(json["post_processor"], config);

        var decoderTypes = Types(json["decoder"], "decoders").ToList();
        _byteLevelDecoder = decoderTypes.Any(d => (string?)d["type"] == "ByteLevel");
        _byteFallbackDecoder = decoderTypes.Any(d => (string?)d["type"] == "ByteFallback");
        foreach (var d in decoderTypes)
        {
            switch ((string?)d["type"])
            {
                case "Replace" when (string?)d["content"] == " ":
                    _spaceReplacement = (string?)d["pattern"]?["String"];
                    break;
                case "Metaspace":
                    _spaceReplacement = (string?)d["replacement"] ?? "▁";
                    if (((string?)d["prepend_scheme"] ?? "always") != "never" && ((bool?)d["add_prefix_space"] ?? true))
                        _stripLeadingSpaces = 1;
                    break;
                case "Strip":
                    _stripLeadingSpaces = (int?)d["start"] ?? 0;
                    break;
            }
        }
    }

    /// <summary>Loads tokenizer.json and, when present, tokenizer_config.json from a model directory
    /// (or a tokenizer.json path).</summary>
    public static ModelTokenizer Load(string modelDirOrFile)
    {
        var file = Directory.Exists(modelDirOrFile) ? Path.Combine(modelDirOrFile, "tokenizer.json") : modelDirOrFile;
        if (!File.Exists(file))
            throw new LlmqException($"{file}: not found (the model has no tokenizer.json; pass token ids as JSON Lines with \"input_ids\" instead)");
        var configFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json");
        return new ModelTokenizer(ReadJson(file), File.Exists(configFile) ? ReadJson(configFile) : null, file);
    }

    static JsonObject ReadJson(string file)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(file)) as JsonObject
                ?? throw new InvalidCheckpointException(file, null, "not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidCheckpointException(file, null, $"invalid JSON: {e.Message}");
        }
    }

    /// <summary>Token ids of <paramref name="text"/>; with <paramref name="addSpecial"/> the post-processor's
    /// (or tokenizer_config's add_bos_token/add_eos_token) special tokens are added, as transformers does by default.
    /// Added/special tokens written in the text are recognised either way.</summary>
    public int[] Encode(string text, bool addSpecial = true)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecial)
            ids.AddRange(_prefix);
        bool atStart = true;
        foreach (var (section, addedId) in _added.Split(text))
        {
            if (addedId is int id)
                ids.Add(id);
            else
                EncodeSection(section, atStart, ids);
            atStart = false;
        }
        if (addSpecial)
            ids.AddRange(_suffix);
        return [.. ids];
    }

    void EncodeSection(string text, bool atStart, List<int> ids)
    {
        var normalized = _normalizer is null ? text : _normalizer(text);
        if (_preTokenizer is null)
        {
            _model.Encode(normalized, ids);
            return;
        }
        foreach (var word in _preTokenizer(new Piece(normalized, atStart)))
            _model.Encode(word.Text, ids);
    }

    /// <summary>Text of the ids; special tokens (bos, eos, ...) are left out unless <paramref name="skipSpecial"/> is false.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecial = true)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        bool first = true;
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is null)
                throw new LlmqException($"token id {id} is outside the vocabulary (size {_idToToken.Length})");
            if (_added.TryGet(id, out var added))
            {
                if (skipSpecial && added.Special)
                    continue;
                Flush(bytes, text);
                text.Append(added.Content);
                first = false;
                continue;
            }
            AppendTokenBytes(_idToToken[id], bytes, first);
            first = false;
        }
        Flush(bytes, text);
        return text.ToString();
    }

    void AppendTokenBytes(string token, List<byte> bytes, bool first)
    {
        if (_byteLevelDecoder)
        {
            ByteLevelAlphabet.Decode(token, bytes);
            return;
        }
        if (_byteFallbackDecoder && token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b))
        {
            bytes.Add(b);
            return;
        }
        if (_spaceReplacement is not null)
            token = token.Replace(_spaceReplacement, " ", StringComparison.Ordinal);
        if (first)
        {
            int strip = 0;
            while (strip < _stripLeadingSpaces && strip < token.Length && token[strip] == ' ')
                strip++;
            token = token[strip..];
        }
        bytes.AddRange(Encoding.UTF8.GetBytes(token));
    }

    static void Flush(List<byte> bytes, StringBuilder text)
    {
        if (bytes.Count == 0)
            return;
        text.Append(Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)));
        bytes.Clear();
    }

    /// <summary>Id of a token string (vocabulary or added token), or null.</summary>
    public int? TokenToId(string token) =>
        _added.TryGet(token, out var id) ? id : _model.Vocab.TryGetValue(token, out var v) ? v : null;

    /// <summary>Token string of an id (as stored in the vocabulary, e.g. "▁the" or "Ġthe").</summary>
    public string IdToToken(int id) =>
        (uint)id < (uint)_idToToken.Length && _idToToken[id] is { } t ? t : throw new LlmqException($"token id {id} is outside the vocabulary");

    int? SpecialId(JsonNode? node)
    {
        var content = node switch
        {
            JsonValue v => (string?)v,
            JsonObject o => (string?)o["content"],
            _ => null,
        };
        return content is null ? null : TokenToId(content);
    }

    /// <summary>The ids added before and after the text. tokenizer_config's add_bos_token/add_eos_token win when
    /// present (transformers' Llama tokenizers rebuild their template from them); otherwise the
    /// TemplateProcessing "single" template of tokenizer.json.</summary>
    (int[] Prefix, int[] Suffix) PostProcessor(JsonNode? node, JsonObject? config)
    {
        if (config is not null && (config["add_bos_token"] is JsonValue || config["add_eos_token"] is JsonValue))
        {
            bool addBos = (bool?)config["add_bos_token"] ?? false, addEos = (bool?)config["add_eos_token"] ?? false;
            return (addBos && Bos is int b ? [b] : [], addEos && Eos is int e ? [e] : []);
        }
        var template = Types(node, "processors").FirstOrDefault(p => (string?)p["type"] == "TemplateProcessing");
        if (template is null)
            return ([], []);
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool afterSequence = false;
        foreach (var item in template["single"] as JsonArray ?? [])
        {
            if (item?["Sequence"] is not null)
            {
                afterSequence = true;
                continue;
            }
            var name = (string?)item?["SpecialToken"]?["id"];
            if (name is null)
                continue;
            var ids = template["special_tokens"]?[name]?["ids"] as JsonArray;
            var tokenIds = ids is not null ? ids.Select(i => (int)i!) : TokenToId(name) is int single ? [single] : [];
            (afterSequence ? suffix : prefix).AddRange(tokenIds);
        }
        return ([.. prefix], [.. suffix]);
    }

    /// <summary>The node itself, or the members of a "Sequence" node (flattened).</summary>
    static IEnumerable<JsonObject> Types(JsonNode? node, string listName)
    {
        if (node is not JsonObject o)
            yield break;
        if ((string?)o["type"] == "Sequence" && o[listName] is JsonArray list)
        {
            foreach (var child in list)
                foreach (var inner in Types(child, listName))
                    yield return inner;
        }
        else
            yield return o;
    }
}
