using System.Text.Json.Nodes;
using Llmq.Tokenization;

namespace Llmq.Tests.Tokenization;

public class ModelTokenizerTests
{
    static ModelTokenizer Stories() => ModelTokenizer.Load(SharedData.Path("models/stories260K-hf"));

    [Fact]
    public void Stories260KGivesTheReferenceIds()
    {
        var tok = Stories();
        var reference = JsonNode.Parse(File.ReadAllText(SharedData.Path("vectors/stories260K/reference_outputs.json")))!;
        foreach (var item in reference["tokenization"]!.AsArray())
        {
            var text = (string)item!["text"]!;
            var expected = item["ids_with_bos"]!.AsArray().Select(i => (int)i!).ToArray();
            Assert.Equal(expected, tok.Encode(text));
            Assert.Equal((string)item["decoded"]!, tok.Decode(expected));
        }
        Assert.Equal(1, tok.Bos);
        Assert.Equal(2, tok.Eos);
        Assert.Equal(512, tok.VocabSize);
    }

    [Fact]
    public void Stories260KGreedyTextRoundTrips()
    {
        var tok = Stories();
        var reference = JsonNode.Parse(File.ReadAllText(SharedData.Path("vectors/stories260K/reference_outputs.json")))!;
        var ids = reference["greedy_from_bos_100"]!["ids"]!.AsArray().Select(i => (int)i!).ToArray();
        var text = tok.Decode(ids);
        Assert.Equal((string)reference["greedy_from_bos_100"]!["text"]!, text);
        Assert.Equal(ids, tok.Encode(text));
    }

    [Theory]
    [InlineData("Once upon a time, there was a dog named Max.")]
    [InlineData("  two leading spaces and\ttabs\n\nand blank lines  ")]
    [InlineData("Unicode: naïve café, 東京, emoji 🙂, Ω≈ç√")]
    [InlineData("a")]
    public void RoundTripsThroughByteFallback(string text)
    {
        var tok = Stories();
        var ids = tok.Encode(text, addSpecial: false);
        Assert.Equal(text, tok.Decode(ids));
        Assert.DoesNotContain(0, ids);   // never <unk>: bytes cover everything
    }

    [Fact]
    public void ByteFallbackSpellsUnknownCharactersAsUtf8Bytes()
    {
        var tok = Stories();
        // "東" = E6 9D B1; ids of <0xNN> are 3 + NN in this vocabulary; "▁" alone is a token.
        var ids = tok.Encode("東", addSpecial: false);
        Assert.Equal([tok.TokenToId("▁")!.Value, 3 + 0xE6, 3 + 0x9D, 3 + 0xB1], ids);
    }

    [Fact]
    public void SpecialTokensInTextAreRecognised()
    {
        var tok = Stories();
        var ids = tok.Encode("a</s>b", addSpecial: false);
        Assert.Equal([.. tok.Encode("a", false), 2, .. tok.Encode("b", false)], ids);
        // Legacy SentencePiece normalizes each section, so "b" gets its own ▁ (as transformers does).
        Assert.Equal("a</s> b", tok.Decode(ids, skipSpecial: false));
        Assert.Equal("a b", tok.Decode(ids));
    }

    [Fact]
    public void CharacterLevelVocabularyWithoutByteFallbackUsesUnk()
    {
        var tok = ModelTokenizer.Load(SharedData.Path("models/babyllama-tok105-hf"));
        var ids = tok.Encode("Hi 東京!", addSpecial: true);
        int Id(string t) => tok.TokenToId(t)!.Value;
        // fuse_unk: the two unknown characters become one <unk>
        Assert.Equal([1, Id("▁"), Id("H"), Id("i"), Id("▁"), 0, Id("!")], ids);
        Assert.Equal("Hi !", tok.Decode(ids));
    }

    [Fact]
    public void EqualRanksMergeLeftmostFirst()
    {
        var tok = Write(SentencePieceJson(["a", "aa"], [("a", "a")]));
        Assert.Equal([Id(tok, "▁"), Id(tok, "aa"), Id(tok, "a")], tok.Encode("aaa", addSpecial: false));
    }

    [Fact]
    public void MetaspacePreTokenizerWithFirstPrependScheme()
    {
        // The newer Llama/Mistral layout: no normalizer, Metaspace(prepend_scheme=first, split=false).
        var json = SentencePieceJson(["H", "i", "t", "h", "e", "r", "▁t", "▁th", "▁the", "▁ther", "▁there", "Hi", "▁Hi"],
            [("▁", "t"), ("▁t", "h"), ("▁th", "e"), ("▁the", "r"), ("▁ther", "e"), ("H", "i"), ("▁", "Hi")]);
        json.Remove("normalizer");
        json["pre_tokenizer"] = JsonNode.Parse("""{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}""");
        json["decoder"] = JsonNode.Parse("""{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}""");
        var tok = Write(json);
        Assert.Equal([1, Id(tok, "▁Hi"), Id(tok, "▁there")], tok.Encode("Hi there"));
        // After a special token the section is not "first": no ▁ prepended.
        Assert.Equal([1, 2, Id(tok, "Hi")], tok.Encode("</s>Hi"));
        Assert.Equal("Hi there", tok.Decode(tok.Encode("Hi there")));
    }

    [Fact]
    public void ByteLevelBpeWithRegexPreTokenizer()
    {
        var tok = Write(ByteLevelJson());
        int Ids(string t) => Id(tok, t);
        // Llama 3 regex: "hello" " world" "!" "\n" "é"; bytes map to Ġ (space), Ċ (\n), Ã© (C3 A9).
        var ids = tok.Encode("hello world!\né");
        Assert.Equal([Ids("<|begin_of_text|>"), Ids("hello"), Ids("Ġworld"), Ids("!"), Ids("Ċ"), Ids("Ã"), Ids("©")], ids);
        Assert.Equal("hello world!\né", tok.Decode(ids));
        Assert.Equal(Ids("<|begin_of_text|>"), tok.Bos);
        Assert.Equal([Ids("<|eot_id|>"), Ids("hello")], tok.Encode("<|eot_id|>hello", addSpecial: false));
    }

    [Fact]
    public void UnsupportedModelTypeIsNamed()
    {
        var json = SentencePieceJson([], []);
        json["model"]!["type"] = "Unigram";
        var e = Assert.Throws<LlmqException>(() => Write(json));
        Assert.Contains("Unigram", e.Message);
    }

    [Fact]
    public void NfcNormalizerLeavesAsciiAndPrecomposedTextAlone()
    {
        Assert.Equal("plain ascii", Normalizers.Unicode("plain ascii", System.Text.NormalizationForm.FormC));
        Assert.Equal("café 東京", Normalizers.Unicode("café 東京", System.Text.NormalizationForm.FormC));
    }

    static int Id(ModelTokenizer tok, string token) => tok.TokenToId(token) ?? throw new Xunit.Sdk.XunitException($"no token {token}");

    /// <summary>A SentencePiece-style (legacy Llama) tokenizer.json: &lt;unk&gt;,&lt;s&gt;,&lt;/s&gt;, 256 byte tokens, ▁, then <paramref name="tokens"/>.</summary>
    static JsonObject SentencePieceJson(string[] tokens, (string, string)[] merges)
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++)
            vocab[$"<0x{b:X2}>"] = 3 + b;
        vocab["▁"] = 259;
        foreach (var t in tokens)
            vocab[t] = vocab.Count;
        return new JsonObject
        {
            ["added_tokens"] = JsonNode.Parse("""
                [{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]
                """),
            ["normalizer"] = JsonNode.Parse("""
                {"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}
                """),
            ["pre_tokenizer"] = null,
            ["post_processor"] = JsonNode.Parse("""
                {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
                 "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}
                """),
            ["decoder"] = JsonNode.Parse("""
                {"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}
                """),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["unk_token"] = "<unk>", ["byte_fallback"] = true, ["fuse_unk"] = true,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray([.. merges.Select(m => (JsonNode)$"{m.Item1} {m.Item2}")]),
            },
        };
    }

    /// <summary>A Llama-3-style byte-level tokenizer.json with a handful of merges (array-form merges).</summary>
    static JsonObject ByteLevelJson()
    {
        string[] chars = ["h", "e", "l", "o", "Ġ", "w", "r", "d", "!", "Ċ", "Ã", "©"];
        string[] merged = ["he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "Ġworl", "Ġworld"];
        (string, string)[] merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("Ġwor", "l"), ("Ġworl", "d")];
        var vocab = new JsonObject();
        foreach (var t in chars.Concat(merged))
            vocab[t] = vocab.Count;
        int begin = vocab.Count, eot = begin + 1;
        const string pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        return new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = begin, ["content"] = "<|begin_of_text|>", ["special"] = true },
                new JsonObject { ["id"] = eot, ["content"] = "<|eot_id|>", ["special"] = true }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = JsonNode.Parse("""
                {"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
                 {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
                  "special_tokens":{"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[BEGIN],"tokens":["<|begin_of_text|>"]}}}]}
                """.Replace("BEGIN", begin.ToString())),
            ["decoder"] = JsonNode.Parse("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"""),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["ignore_merges"] = true, ["byte_fallback"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray([.. merges.Select(m => (JsonNode)new JsonArray(m.Item1, m.Item2))]),
            },
        };
    }

    static ModelTokenizer Write(JsonObject json, string? config = null)
    {
        var dir = Directory.CreateTempSubdirectory("llmq-tok-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "tokenizer.json"), json.ToJsonString());
            File.WriteAllText(Path.Combine(dir.FullName, "tokenizer_config.json"),
                config ?? """{"bos_token":"<|begin_of_text|>","eos_token":"<|eot_id|>"}""");
            return ModelTokenizer.Load(dir.FullName);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
