using System.Text.Json.Nodes;
using Llmq.Calibration;
using Llmq.Evaluation;
using Llmq.Models;
using Llmq.Tokenization;

namespace Llmq.Tests.Evaluation;

public class PerplexityTests
{
    /// <summary>Logits given by a function of (window position, previous token), to check the windowing by hand.</summary>
    sealed class FakeModel(int vocab, Func<int, int, int, float> logit) : ILogitsModel
    {
        public int VocabSize => vocab;
        public int Runs { get; private set; }

        public ILogitsBatch Run(ReadOnlySpan<int> tokens, int batch, int seqLen)
        {
            Runs++;
            return new Batch(tokens.ToArray(), seqLen, vocab, logit);
        }

        sealed class Batch(int[] tokens, int seqLen, int vocab, Func<int, int, int, float> logit) : ILogitsBatch
        {
            public void Logits(int firstRow, int rows, Span<float> logits)
            {
                for (int r = 0; r < rows; r++)
                    for (int v = 0; v < vocab; v++)
                        logits[r * vocab + v] = logit((firstRow + r) % seqLen, tokens[firstRow + r], v);
            }

            public void Dispose() { }
        }
    }

    [Fact]
    public void UniformModelHasPerplexityEqualToVocabulary()
    {
        var model = new FakeModel(10, (_, _, _) => 0f);
        var r = Perplexity.Evaluate(model, new int[1000], new PerplexityOptions { SeqLen = 64, TokensPerBatch = 128 });
        Assert.Equal(15, r.Windows);              // 1000 / 64, the 40-token tail dropped
        Assert.Equal(15 * 63, r.ScoredTokens);    // the last position of each window predicts nothing
        Assert.Equal(10.0, r.Perplexity, 5);
        Assert.Equal(8, model.Runs);              // two windows per batch
    }

    [Fact]
    public void ScoresOnlyPredictionsInsideEachWindow()
    {
        // Windows of 4 over the stream 0,1,2,3,0,1,2,3,...; the model bets on "previous + 1", which is right inside
        // every window and wrong across a window boundary (3 → 0), where nothing may be scored.
        var tokens = Enumerable.Range(0, 64).Select(i => i % 4).ToArray();
        var model = new FakeModel(8, (_, prev, v) => v == prev + 1 ? 2f : 0f);
        var r = Perplexity.Evaluate(model, tokens, new PerplexityOptions { SeqLen = 4, TokensPerBatch = 12 });
        Assert.Equal(Math.Log(1 + 7 * Math.Exp(-2)), r.MeanNll, 6);   // −log p(right token)
        Assert.Equal(16, r.Windows);
        Assert.Equal(3, Perplexity.Evaluate(model, tokens, new PerplexityOptions { SeqLen = 4, MaxWindows = 3 }).Windows);
    }

    [Fact]
    public void KlDivergenceAgainstABaseModel()
    {
        var p = new FakeModel(2, (_, _, v) => v == 0 ? 0f : MathF.Log(3f));   // p = (1/4, 3/4)
        var q = new FakeModel(2, (_, _, _) => 0f);                             // q = (1/2, 1/2)
        var r = Perplexity.Evaluate(q, new int[32], new PerplexityOptions { SeqLen = 16 }, baseModel: p);
        double kl = 0.25 * Math.Log(0.25 / 0.5) + 0.75 * Math.Log(0.75 / 0.5);   // KL(base ‖ model)
        Assert.Equal(kl, r.MeanKl!.Value, 6);
        Assert.Equal(0.0, Perplexity.Evaluate(q, new int[32], new() { SeqLen = 16 }, baseModel: q).MeanKl!.Value, 9);
    }

    [Fact]
    public void TooFewTokensIsAClearError()
    {
        var e = Assert.Throws<LlmqException>(() => Perplexity.Evaluate(new FakeModel(4, (_, _, _) => 0), new int[100], new() { SeqLen = 512 }));
        Assert.Contains("--seq-len", e.Message);
    }

    [Fact]
    public void Stories260KDocumentNllMatchesTheReference()
    {
        // reference_outputs.json: per document, BOS + story, every token after BOS scored (float64 HF-Llama forward).
        var dir = SharedData.Path("models/stories260K-hf");
        var reference = JsonNode.Parse(File.ReadAllText(SharedData.Path("vectors/stories260K/reference_outputs.json")))!["cs336_sample_docs"]!;
        var docs = File.ReadAllText(SharedData.Path("data/tinystories/tinystories_sample_cs336.txt"))
            .Split("<|endoftext|>").Select(d => d.Trim()).Where(d => d.Length > 0).ToArray();
        var tok = ModelTokenizer.Load(dir);
        using var model = DecoderModel.Open(dir);
        var logits = new DecoderLogitsModel(model);
        double totalNll = 0;
        long totalScored = 0;
        for (int i = 0; i < docs.Length; i++)
        {
            var ids = tok.Encode(docs[i]);
            ids = ids[..Math.Min(ids.Length, 512)];
            var expected = reference["docs"]![i]!;
            Assert.Equal((int)expected["n_tokens"]!, ids.Length);
            var r = Perplexity.Evaluate(logits, ids, new() { SeqLen = ids.Length });
            double sum = r.MeanNll * r.ScoredTokens;
            Assert.Equal((double)expected["sum_nll_hf"]!, sum, sum * 1e-4);
            totalNll += sum;
            totalScored += r.ScoredTokens;
        }
        Assert.Equal((double)reference["mean_nll"]!, totalNll / totalScored, 1e-4);
    }

    [Fact]
    public void TinyStoriesStreamHasTheReferenceTokenCount()
    {
        // ppl_results.json "ts_val_stream_nonoverlap512": the first 1200 paragraphs joined by "\n", one BOS, encoded once:
        // 104789 tokens → 204 windows of 512 → 104244 scored. (The NLL itself is checked by `llmq eval` in the notes:
        // the full run takes longer than a unit test should.)
        var tok = ModelTokenizer.Load(SharedData.Path("models/stories260K-hf"));
        var paragraphs = TextSource.Open(SharedData.Path("data/tinystories/tinystories_val_moe-routing-bench.txt")).Records().Take(1200);
        var ids = Perplexity.TokenStream(TextSource.FromIds("x", []), tok);
        Assert.Empty(ids);
        ids = Perplexity.TokenStream(TextSource.FromText("first 1200", string.Join("\n\n", paragraphs.Select(p => p.Text))), tok);
        Assert.Equal(104789, ids.Length);
        Assert.Equal(1, ids[0]);
        Assert.Equal(104244, ids.Length / 512 * 511);
    }
}
