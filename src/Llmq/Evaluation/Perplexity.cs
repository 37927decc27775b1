using System.Diagnostics;
using Llmq.Calibration;
using Llmq.Tokenization;

namespace Llmq.Evaluation;

public sealed class PerplexityOptions
{
    /// <summary>Window length: the text is cut into non-overlapping windows of this many tokens (the tail that does not fill
    /// a window is dropped).</summary>
    public int SeqLen { get; init; } = 512;
    /// <summary>Evaluate only the first N windows (0: all).</summary>
    public int MaxWindows { get; init; }
    /// <summary>Tokens per forward pass (whole windows; at least one window).</summary>
    public int TokensPerBatch { get; init; } = 4096;
}

/// <param name="Windows">Windows evaluated.</param>
/// <param name="ScoredTokens">Predicted tokens: Windows · (SeqLen − 1).</param>
/// <param name="MeanNll">Mean negative log-likelihood (nats) of the predicted tokens.</param>
/// <param name="MeanKl">Mean KL(base ‖ model) per predicted token, when a base model was given.</param>
public sealed record PerplexityResult(int Windows, long ScoredTokens, double MeanNll, double? MeanKl, TimeSpan Elapsed)
{
    public double Perplexity => Math.Exp(MeanNll);
    /// <summary>Tokens run through the model per second (all window tokens, base model included in the time).</summary>
    public double TokensPerSecond(int seqLen) => Windows * (double)seqLen / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <param name="WindowsDone">Windows finished so far, of <paramref name="Windows"/>.</param>
public readonly record struct PerplexityProgress(int WindowsDone, int Windows, double MeanNllSoFar, TimeSpan Elapsed);

/// <summary>
/// Perplexity as the GPTQ paper's evaluation and llama.cpp compute it: the token stream is cut into non-overlapping
/// windows of SeqLen tokens, each window is run on its own (positions restart at 0), and every position but the last
/// predicts the next token of its window; perplexity = exp(mean NLL) over all predicted tokens
/// (SeqLen − 1 per window). The stream itself is built by <see cref="TokenStream"/>.
/// With a base model, the mean KL(base ‖ model) of the next-token distributions over the same positions
/// (what llama.cpp's --kl-divergence reports) comes too.
/// </summary>
public static class Perplexity
{
    /// <summary>The evaluation token stream: text records joined by "\n" and encoded once, with the tokenizer's bos in
    /// front (as llama.cpp tokenizes a whole file); token-id records concatenated as they are.</summary>
    public static int[] TokenStream(TextSource source, ModelTokenizer? tokenizer)
    {
        var ids = new List<int>();
        var texts = new List<string>();
        string? bos = tokenizer?.Bos is int b ? tokenizer.IdToToken(b) : null;
        foreach (var record in source.Records())
        {
            if (record.Ids is { } recordIds)
                ids.AddRange(CalibrationSet.Tokenize(record, tokenizer, source.Name));
            else if (tokenizer is null)
                CalibrationSet.Tokenize(record, tokenizer, source.Name);   // throws the "no tokenizer" error
            else
                texts.Add(record.Text ?? ChatFormat.Render(record.Messages!, tokenizer.ChatTemplate, bos));
        }
        if (texts.Count > 0)
        {
            if (ids.Count > 0)
                throw new LlmqException($"{source.Name}: mixes text and input_ids records; use one kind");
            return tokenizer!.Encode(string.Join("\n", texts));
        }
        return [.. ids];
    }

    public static PerplexityResult Evaluate(ILogitsModel model, ReadOnlySpan<int> tokens, PerplexityOptions options,
        ILogitsModel? baseModel = null, IProgress<PerplexityProgress>? progress = null)
    {
        int seqLen = options.SeqLen;
        if (seqLen < 2)
            throw new LlmqException($"--seq-len must be at least 2 (got {seqLen})");
        int windows = tokens.Length / seqLen;
        if (options.MaxWindows > 0)
            windows = Math.Min(windows, options.MaxWindows);
        if (windows == 0)
            throw new LlmqException($"the dataset gives {tokens.Length} tokens, fewer than one window of {seqLen}; lower --seq-len");
        if (baseModel is not null && baseModel.VocabSize != model.VocabSize)
            throw new LlmqException($"the base model's vocabulary ({baseModel.VocabSize}) differs from the model's ({model.VocabSize}); KL needs the same tokenizer");

        int vocab = model.VocabSize;
        int perBatch = Math.Clamp(options.TokensPerBatch / seqLen, 1, windows);
        // Rows of logits held at once: about 16M floats per model, whole windows' rows or fewer.
        int chunkRows = Math.Clamp((16 << 20) / vocab, 1, perBatch * seqLen);
        var logits = new float[chunkRows * vocab];
        var baseLogits = baseModel is null ? null : new float[chunkRows * vocab];
        var rowNll = new double[chunkRows];
        var rowKl = new double[chunkRows];
        double nll = 0, kl = 0;
        long scored = 0;
        var clock = Stopwatch.StartNew();

        for (int w0 = 0; w0 < windows; w0 += perBatch)
        {
            int batch = Math.Min(perBatch, windows - w0);
            var batchTokens = tokens.Slice(w0 * seqLen, batch * seqLen).ToArray();
            using var run = model.Run(batchTokens, batch, seqLen);
            using var baseRun = baseModel?.Run(batchTokens, batch, seqLen);
            for (int r0 = 0; r0 < batch * seqLen; r0 += chunkRows)
            {
                int rows = Math.Min(chunkRows, batch * seqLen - r0);
                run.Logits(r0, rows, logits);
                baseRun?.Logits(r0, rows, baseLogits);
                Parallel.For(0, rows, () => (new float[vocab], new float[vocab]), (i, _, scratch) =>
                {
                    int row = r0 + i;
                    rowNll[i] = rowKl[i] = 0;
                    if (row % seqLen == seqLen - 1)
                        return scratch;   // the last position of a window has nothing to predict inside it
                    var (lp, lq) = scratch;
                    Models.LogSoftmax.Apply(logits.AsSpan(i * vocab, vocab), lp);
                    int target = batchTokens[row + 1];
                    rowNll[i] = -lp[target];
                    if (baseLogits is not null)
                    {
                        Models.LogSoftmax.Apply(baseLogits.AsSpan(i * vocab, vocab), lq);
                        rowKl[i] = KlDivergence(lq, lp);
                    }
                    return scratch;
                }, _ => { });
                // Summed in row order, so the result does not depend on thread scheduling.
                for (int i = 0; i < rows; i++)
                {
                    nll += rowNll[i];
                    kl += rowKl[i];
                }
            }
            scored += (long)batch * (seqLen - 1);
            progress?.Report(new PerplexityProgress(w0 + batch, windows, nll / scored, clock.Elapsed));
        }
        return new PerplexityResult(windows, scored, nll / scored, baseModel is null ? null : kl / scored, clock.Elapsed);
    }

    /// <summary>KL(p ‖ q) = Σ p (log p − log q) from two rows of log-probabilities.</summary>
    static double KlDivergence(ReadOnlySpan<float> logP, ReadOnlySpan<float> logQ)
    {
        double kl = 0;
        for (int i = 0; i < logP.Length; i++)
        {
            double lp = logP[i];
            kl += Math.Exp(lp) * (lp - logQ[i]);
        }
        return kl;
    }
}
