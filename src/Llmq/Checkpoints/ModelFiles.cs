namespace Llmq.Checkpoints;

/// <summary>The files of a model directory that a compressed model keeps unchanged: tokenizer, generation settings, chat template.</summary>
public static class ModelFiles
{
    static readonly string[] Exact =
    [
        "generation_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
        "chat_template.json", "chat_template.jinja", "preprocessor_config.json", "sp_vocab_scores.json",
    ];

    static readonly string[] Prefixes = ["tokenizer", "chat_template", "LICENSE"];

    public static bool IsAuxiliary(string fileName) =>
        Exact.Contains(fileName, StringComparer.Ordinal)
        || Prefixes.Any(p => fileName.StartsWith(p, StringComparison.Ordinal))
        || fileName.EndsWith(".tiktoken", StringComparison.Ordinal);

    /// <summary>Copies the auxiliary files of <paramref name="sourceDir"/> (not weights, not config.json) into
    /// <paramref name="destDir"/>; returns their names.</summary>
    public static IReadOnlyList<string> CopyAuxiliary(string sourceDir, string destDir)
    {
        Directory.CreateDirectory(destDir);
        var copied = new List<string>();
        foreach (var file in Directory.EnumerateFiles(sourceDir).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(file);
            if (!IsAuxiliary(name))
                continue;
            File.Copy(file, Path.Combine(destDir, name), overwrite: true);
            copied.Add(name);
        }
        return copied;
    }
}
