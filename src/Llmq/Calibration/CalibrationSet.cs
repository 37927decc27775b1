using Llmq.Tokenization;

namespace Llmq.Calibration;

/// <summary>How records become fixed-size samples.</summary>
public enum CalibrationPacking
{
    /// <summary>Records (each with the tokenizer's bos) are concatenated and cut into SeqLen-token chunks;
    /// every sample has exactly SeqLen tokens, and no token is padding.</summary>
    Concatenate,
    /// <summary>One sample per record, truncated to SeqLen (shorter records stay shorter), as llm-compressor does.</summary>
    Truncate,
}

public sealed class CalibrationOptions
{
    /// <summary>Number of samples wanted (fewer come back when the data runs out).</summary>
    public int Samples { get; init; } = 128;
    public int SeqLen { get; init; } = 512;
    public int Seed { get; init; } = 42;
    public CalibrationPacking Packing { get; init; } = CalibrationPacking.Concatenate;
}

/// <summary>Token samples for calibration (GPTQ Hessians, AWQ/imatrix statistics).</summary>
public static class CalibrationSet
{
    /// <summary>Varied English prose, dialogue, code and instructions written for this project
    /// (Calibration/BuiltInCalibration.txt), so that quantizing needs no dataset argument.</summary>
    public static TextSource BuiltIn { get; } = TextSource.FromText("built-in calibration text", ReadBuiltInText());

    /// <summary>Builds the samples: records are shuffled with <see cref="CalibrationOptions.Seed"/>, tokenized
    /// lazily until enough tokens are at hand, then packed. Token-id records need no tokenizer; text and
    /// conversations do (a clear error says so when it is null).</summary>
    public static int[][] Build(TextSource source, ModelTokenizer? tokenizer, CalibrationOptions options)
    {
        if (options.Samples <= 0 || options.SeqLen <= 0)
            throw new LlmqException($"calibration needs --samples and --seq-len above zero (got {options.Samples} and {options.SeqLen})");
        var records = source.Records().ToList();
        if (records.Count == 0)
            throw new LlmqException($"{source.Name}: the dataset has no records");
        new Random(options.Seed).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(records));

        var samples = new List<int[]>(options.Samples);
        if (options.Packing == CalibrationPacking.Truncate)
        {
            foreach (var record in records)
            {
                var ids = Tokenize(record, tokenizer, source.Name);
                if (ids.Length == 0)
                    continue;
                samples.Add(ids.Length > options.SeqLen ? ids[..options.SeqLen] : ids);
                if (samples.Count == options.Samples)
                    break;
            }
            return [.. samples];
        }

        var chunk = new int[options.SeqLen];
        int filled = 0;
        foreach (var record in records)
        {
            foreach (var id in Tokenize(record, tokenizer, source.Name))
            {
                chunk[filled++] = id;
                if (filled < options.SeqLen)
                    continue;
                samples.Add(chunk);
                if (samples.Count == options.Samples)
                    return [.. samples];
                chunk = new int[options.SeqLen];
                filled = 0;
            }
        }
        return [.. samples];
    }

    /// <summary>Token ids of one record, with the tokenizer's special tokens (bos) as the model saw them in training.</summary>
    public static int[] Tokenize(TextRecord record, ModelTokenizer? tokenizer, string sourceName)
    {
        if (record.Ids is { } ids)
        {
            if (tokenizer is not null && ids.Any(i => (uint)i >= (uint)tokenizer.VocabSize))
                throw new LlmqException($"{sourceName}: input_ids holds {ids.First(i => (uint)i >= (uint)tokenizer.VocabSize)}, outside the vocabulary (size {tokenizer.VocabSize})");
            return ids;
        }
        if (tokenizer is null)
            throw new LlmqException($"{sourceName}: the dataset holds text but the model has no tokenizer.json; give token ids (JSON Lines with \"input_ids\") instead");
        if (record.Text is { } text)
            return tokenizer.Encode(text);
        var bos = tokenizer.Bos is int b ? tokenizer.IdToToken(b) : null;
        var rendered = ChatFormat.Render(record.Messages!, tokenizer.ChatTemplate, bos);
        // Templates that write bos themselves must not get a second one.
        return tokenizer.Encode(rendered, addSpecial: bos is null || !rendered.StartsWith(bos, StringComparison.Ordinal));
    }

    static string ReadBuiltInText()
    {
        using var stream = typeof(CalibrationSet).Assembly.GetManifestResourceStream("Llmq.Calibration.BuiltInCalibration.txt")
            ?? throw new InvalidOperationException("the built-in calibration text is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
