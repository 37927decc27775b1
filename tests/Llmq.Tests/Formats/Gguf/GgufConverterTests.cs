using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>The one-step converter against llama.cpp: for stories260K our file equals, byte for byte, what llama-quantize
/// writes from our F32 GGUF (vectors/stories260k_llama_quantize.json), which covers metadata, tensor order, the per-tensor
/// type choices with their fallbacks, and the block bytes. llama.cpp also loads that F32 file, tokenizes as the reference
/// and reproduces the reference logits (checked when the vectors were made).</summary>
public class GgufConverterTests
{
    static string Stories => SharedData.Path("models/stories260K-hf");

    [Theory]
    [InlineData("Q4_K_M"), InlineData("Q4_K_S"), InlineData("Q5_K_M"), InlineData("Q6_K"), InlineData("Q8_0"), InlineData("Q4_0")]
    public void Stories260KMatchesLlamaQuantize(string type)
    {
        var model = Stories;
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Formats", "Gguf", "Vectors", "stories260k_llama_quantize.json")))![type]!.GetValue<string>();
        using var dir = new TempDirectory();
        var result = GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions { FileType = GgufTypePolicy.Parse(type) });
        Assert.Equal(expected, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(result.Path))));
    }

    [Fact]
    public void StreamingInSmallStepsWritesTheSameFile()
    {
        // 1000 elements per step: every tensor, the permuted q/k ones included (a step is whole heads), takes several steps
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Formats", "Gguf", "Vectors", "stories260k_llama_quantize.json")))!["Q4_K_M"]!.GetValue<string>();
        using var dir = new TempDirectory();
        int saved = GgufConverter.StreamElements;
        GgufConverter.StreamElements = 1000;
        try
        {
            var result = GgufConverter.Convert(Stories, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_K_M });
            Assert.Equal(expected, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(result.Path))));
        }
        finally
        {
            GgufConverter.StreamElements = saved;
        }
    }

    [Fact]
    public void ParallelStepsThatCutThroughHeadsWriteTheSameFileAsOneStepPerTensor()
    {
        // q has 4 heads of 64 rows, k 2: steps of 10 rows in items of 3 start and end inside heads, so an item reads
        // its permuted rows from both rotary halves of a head, and the steps' writes queue behind one another
        using var dir = new TempDirectory();
        var model = dir["model"];
        RandomModel.Write(model, RandomModelSpec.Llama(256, 2, 4, 2, 512, 300), seed: 5);
        var options = new GgufConvertOptions { FileType = GgufFileType.Q4_K_M };
        var whole = File.ReadAllBytes(GgufConverter.Convert(model, dir["whole.gguf"], options).Path);
        int savedStep = GgufConverter.StreamElements, savedTask = GgufConverter.TaskElements;
        GgufConverter.StreamElements = 10 * 256;
        GgufConverter.TaskElements = 3 * 256;
        try
        {
            Assert.Equal(whole, File.ReadAllBytes(GgufConverter.Convert(model, dir["steps.gguf"], options).Path));
        }
        finally
        {
            GgufConverter.StreamElements = savedStep;
            GgufConverter.TaskElements = savedTask;
        }
    }

    [Fact]
    public void BadInputFoundInsideTheParallelStepsKeepsItsType()
    {
        using var dir = new TempDirectory();
        var model = dir["model"];
        RandomModel.Write(model, RandomModelSpec.TinyLlama, seed: 7);
        var imatrix = new ImportanceMatrix();
        imatrix.Set("blk.0.attn_q.weight", new float[32], 1);
        var e = Assert.Throws<LlmqException>(() => GgufConverter.Convert(model, dir["a.gguf"], new GgufConvertOptions { Imatrix = imatrix }));
        Assert.Contains("'blk.0.attn_q.weight' has 32 columns", e.Message);

        // a weight stored as integers is found by the work items that read it: their error, not an AggregateException
        var ints = dir["ints"];
        using (var source = Checkpoint.Open(model))
        using (var writer = new SafetensorsWriter(ints))
        {
            foreach (var t in source.Tensors)
                if (t.Name == "model.layers.1.mlp.up_proj.weight") writer.Add(t.Name, DType.I32, t.Shape, new byte[t.ElementCount * 4]);
                else writer.Add(t.Name, t.DType, t.Shape, source.Bytes(t.Name));
            writer.Finish();
        }
        File.Copy(Path.Combine(model, "config.json"), Path.Combine(ints, "config.json"));
        e = Assert.Throws<LlmqException>(() => GgufConverter.Convert(ints, dir["b.gguf"], new GgufConvertOptions()));
        Assert.Contains("model.layers.1.mlp.up_proj.weight' is I32", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));   // neither output nor a temporary file is left
    }

    [Theory]
    [InlineData(1, 2), InlineData(1, 4), InlineData(3, 8), InlineData(4, 6)]
    public void PermutedSourceRowIsTheRowPermuteRowsMoves(int heads, int headRows)
    {
        var rows = Enumerable.Range(0, heads * headRows).Select(r => (long)r).ToArray();
        var permuted = new long[rows.Length];
        GgufTensorNames.PermuteRows<long>(rows, permuted, heads, cols: 1);
        Assert.Equal(permuted, rows.Select(r => GgufTensorNames.PermutedSourceRow(r, headRows)));
    }

    [Fact]
    public void Stories260KCarriesLlamaMetadataAndTokenizer()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q4_K_M }).Path;
        using var r = GgufReader.Open(path);
        var m = r.Metadata;
        Assert.Equal("llama", r.GetString("general.architecture"));
        Assert.Equal(5u, m["llama.block_count"].Value);
        Assert.Equal(64u, m["llama.embedding_length"].Value);
        Assert.Equal(172u, m["llama.feed_forward_length"].Value);
        Assert.Equal(8u, m["llama.attention.head_count"].Value);
        Assert.Equal(4u, m["llama.attention.head_count_kv"].Value);
        Assert.Equal(8u, m["llama.rope.dimension_count"].Value);
        Assert.Equal(512u, m["llama.context_length"].Value);
        Assert.Equal(1e-5f, m["llama.attention.layer_norm_rms_epsilon"].Value);
        Assert.Equal(10000f, m["llama.rope.freq_base"].Value);
        Assert.Equal((uint)GgufFileType.Q4_K_M, m["general.file_type"].Value);
        Assert.Equal(2u, m["general.quantization_version"].Value);
        Assert.Equal("llama", r.GetString("tokenizer.ggml.model"));
        var tokens = m["tokenizer.ggml.tokens"].AsArray<string>();
        Assert.Equal(512, tokens.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("▁t", tokens[259]);
        Assert.Equal(-1f, m["tokenizer.ggml.scores"].AsArray<float>()[260]);
        Assert.Equal([2, 3, 3, 6], m["tokenizer.ggml.token_type"].AsArray<int>()[..4]);
        Assert.Equal(1u, m["tokenizer.ggml.bos_token_id"].Value);
        Assert.Equal(2u, m["tokenizer.ggml.eos_token_id"].Value);
        Assert.Equal(0u, m["tokenizer.ggml.unknown_token_id"].Value);
        Assert.True(m["tokenizer.ggml.add_bos_token"].AsBool());
        // tied embeddings: no output.weight; token_embd takes the output's type (Q6_K → Q8_0 for 64-wide rows)
        Assert.False(r.Contains("output.weight"));
        Assert.Equal(GgmlType.Q8_0, r.Info("token_embd.weight").Type);
        Assert.Equal(GgmlType.F16, r.Info("blk.0.ffn_down.weight").Type);   // 172 columns: no block fits
        Assert.Equal(GgmlType.Q5_0, r.Info("blk.0.attn_q.weight").Type);    // Q4_K → Q5_0 for 64-wide rows
        Assert.Equal(GgmlType.Q8_0, r.Info("blk.2.attn_v.weight").Type);    // use_more_bits layer: Q6_K → Q8_0
        Assert.Equal(GgmlType.Q5_0, r.Info("blk.1.attn_v.weight").Type);
    }

    [Fact]
    public void SentencePieceScoresDerivedFromTokenizerJsonMatchSpVocabScores()
    {
        // stories260K ships sp_vocab_scores.json; without it the vocabulary is derived from tokenizer.json and must agree
        using var dir = new TempDirectory();
        var copy = dir["model"];
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Stories))
            if (Path.GetFileName(f) != "sp_vocab_scores.json")
                File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var withFile = GgufConverter.Convert(Stories, dir["a.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q8_0 }).Path;
        var derived = GgufConverter.Convert(copy, dir["b.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q8_0 }).Path;
        using var a = GgufReader.Open(withFile);
        using var b = GgufReader.Open(derived);
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type" })
            Assert.Equal((System.Collections.IEnumerable)a.Metadata[key].Value, (System.Collections.IEnumerable)b.Metadata[key].Value);
    }

    [Fact]
    public void F32FileRoundTripsTheCheckpointThroughThePermutation()
    {
        using var dir = new TempDirectory();
        var path = GgufConverter.Convert(Stories, dir["f32.gguf"], new GgufConvertOptions { FileType = GgufFileType.F32 }).Path;
        using var r = GgufReader.Open(path);
        using var c = Checkpoint.Open(Stories);
        foreach (var t in r.Tensors)
        {
            var hf = GgufTensorNames.ToHf(t.Name, out var order);
            Assert.Equal(c.Shape(hf), t.Shape);
            var values = r.ReadFloat32(t.Name);
            if (order != GgufRowOrder.AsIs)
            {
                var back = new float[values.Length];
                GgufTensorNames.PermuteRows(values, back, order == GgufRowOrder.PermuteQueryHeads ? 8 : 4, (int)t.Columns, inverse: true);
                values = back;
            }
            Assert.Equal(c.ReadFloat32(hf), values);
        }
    }

    [Fact]
    public void PermutationInterleavesRotaryHalves()
    {
        // one head of 4 rows (d = 4, halves [0,1] and [2,3]) → llama.cpp order 0, 2, 1, 3
        float[] rows = [0, 1, 2, 3];
        var dst = new float[4];
        GgufTensorNames.PermuteRows(rows, dst, heads: 1, cols: 1);
        Assert.Equal([0f, 2f, 1f, 3f], dst);
        var back = new float[4];
        GgufTensorNames.PermuteRows(dst, back, heads: 1, cols: 1, inverse: true);
        Assert.Equal(rows, back);
    }

    [Fact]
    public void ModelWithoutTokenizerGetsLlamaCppsNoVocab()
    {
        // llama.cpp (llama_vocab::impl::load) takes "no_vocab" as LLAMA_VOCAB_TYPE_NONE and sizes the vocabulary from
        // {arch}.vocab_size; no token list, scores or special ids are read
        using var dir = new TempDirectory();
        var model = dir["model"];
        RandomModel.Write(model, RandomModelSpec.Llama(256, 1, 4, 2, 512, 300), seed: 3);
        var messages = new List<string>();
        var path = GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions(), new SyncProgress(messages)).Path;
        using var r = GgufReader.Open(path);
        Assert.Equal(GgufVocabulary.NoVocabulary, r.GetString("tokenizer.ggml.model"));
        Assert.Equal(300u, r.Metadata["llama.vocab_size"].Value);
        Assert.DoesNotContain(r.Metadata.Keys, k => k.StartsWith("tokenizer.", StringComparison.Ordinal) && k != "tokenizer.ggml.model");
        Assert.Equal([256L, 300L], r.Info("token_embd.weight").Dimensions);
        Assert.Contains(messages, m => m.Contains("no vocabulary", StringComparison.Ordinal));
    }

    [Fact]
    public void TokenizerThatCannotBeReadIsRefusedNotDropped()
    {
        using var dir = new TempDirectory();
        var model = dir["model"];
        RandomModel.Write(model, RandomModelSpec.TinyLlama, seed: 3);
        File.WriteAllBytes(Path.Combine(model, "tokenizer.model"), [0]);
        var e = Assert.Throws<LlmqException>(() => GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions()));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.False(File.Exists(dir["m.gguf"]));
    }

    sealed class SyncProgress(List<string> messages) : IProgress<string>
    {
        public void Report(string value) => messages.Add(value);
    }

    [Fact]
    public void ExistingOutputIsRefusedAndNothingHalfWrittenIsLeft()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir["m.gguf"], "x");
        Assert.Throws<LlmqException>(() => GgufConverter.Convert(Stories, dir["m.gguf"], new GgufConvertOptions()));
        Assert.Throws<LlmqException>(() => GgufConverter.Convert(dir.Path, dir["n.gguf"], new GgufConvertOptions()));
        Assert.Equal(["m.gguf"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }
}
