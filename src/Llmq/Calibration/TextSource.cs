using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Parquet;
using Parquet.Serialization;

namespace Llmq.Calibration;

/// <summary>One chat turn of a conversational dataset.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>One record of a dataset: plain text, a conversation, or token ids ready to use (exactly one is set).</summary>
public sealed record TextRecord(string? Text = null, IReadOnlyList<ChatMessage>? Messages = null, int[]? Ids = null);

/// <summary>Where calibration or evaluation text comes from. By file extension:
/// <list type="bullet">
/// <item>.jsonl / .json (JSON Lines): per line a text field ("text" unless named), "messages"/"conversations"
/// (role+content or ShareGPT from+value), or "input_ids" (token ids, for models without a tokenizer at hand);</item>
/// <item>.parquet: the same columns as Hugging Face datasets store them;</item>
/// <item>anything else: plain UTF-8 text, one record per blank-line-separated paragraph (trimmed).</item>
/// </list>
/// Records stream lazily; a bad line or row fails with the file and line named.</summary>
public sealed partial class TextSource
{
    readonly Func<IEnumerable<TextRecord>> _records;

    /// <summary>File path, or a name for built-in/in-memory text.</summary>
    public string Name { get; }

    TextSource(string name, Func<IEnumerable<TextRecord>> records)
    {
        Name = name;
        _records = records;
    }

    /// <summary>The records, in file order.</summary>
    public IEnumerable<TextRecord> Records() => _records();

    /// <summary>Plain text held in memory, split into paragraphs like a .txt file.</summary>
    public static TextSource FromText(string name, string text) =>
        new(name, () => Paragraphs(text).Select(p => new TextRecord(Text: p)));

    /// <summary>Token-id sequences held in memory.</summary>
    public static TextSource FromIds(string name, IEnumerable<int[]> samples) =>
        new(name, () => samples.Select(ids => new TextRecord(Ids: ids)));

    /// <summary>Opens a dataset file; <paramref name="field"/> names the text column of JSON Lines/Parquet
    /// (default: the first of text, messages, conversations, input_ids that a record has).</summary>
    public static TextSource Open(string path, string? field = null)
    {
        if (!File.Exists(path))
            throw new LlmqException($"{path}: dataset file not found");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".jsonl" or ".json" or ".ndjson" => new(path, () => ReadJsonLines(path, field)),
            ".parquet" => new(path, () => ReadParquet(path, field)),
            _ => new(path, () => Paragraphs(File.ReadAllText(path)).Select(p => new TextRecord(Text: p))),
        };
    }

    /// <summary>Blank-line-separated blocks of the text, trimmed, empty ones dropped.</summary>
    public static IEnumerable<string> Paragraphs(string text) =>
        BlankLine().Split(text.ReplaceLineEndings("\n")).Select(p => p.Trim()).Where(p => p.Length > 0);

    [GeneratedRegex(@"\n[ \t]*\n")]
    private static partial Regex BlankLine();

    static readonly string[] DefaultFields = ["text", "messages", "conversations", "input_ids"];

    static IEnumerable<TextRecord> ReadJsonLines(string path, string? field)
    {
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonObject obj;
            try
            {
                obj = JsonNode.Parse(line) as JsonObject ?? throw new LlmqException($"{path}:{lineNumber}: not a JSON object");
            }
            catch (JsonException e)
            {
                throw new LlmqException($"{path}:{lineNumber}: invalid JSON ({e.Message}); expected one JSON object per line");
            }
            yield return ToRecord(name => obj[name] is { } n ? FromJson(n) : null, field, $"{path}:{lineNumber}");
        }
    }

    static IEnumerable<TextRecord> ReadParquet(string path, string? field)
    {
        int groups = Parquet(path, stream =>
        {
            var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
            int count = reader.RowGroupCount;
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return count;
        });
        for (int g = 0; g < groups; g++)
        {
            // One row group at a time: HF datasets write row groups of a few thousand rows.
            var rows = Parquet(path, stream => ParquetSerializer.DeserializeUntypedAsync(stream, rowGroupIndex: g).GetAwaiter().GetResult().Data);
            for (int r = 0; r < rows.Count; r++)
            {
                var row = rows[r];
                yield return ToRecord(name => row.TryGetValue(name, out var v) ? v : null, field, $"{path}: row group {g}, row {r}");
            }
        }
    }

    static T Parquet<T>(string path, Func<Stream, T> read)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return read(stream);
        }
        catch (Exception e) when (e is not LlmqException)
        {
            throw new LlmqException($"{path}: not a readable Parquet file ({e.Message})", e);
        }
    }

    /// <summary>JSON → the same plain shapes Parquet rows have (string, numbers, lists, dictionaries).</summary>
    static object? FromJson(JsonNode node) => node switch
    {
        JsonArray a => a.Select(n => n is null ? null : FromJson(n)).ToList(),
        JsonObject o => o.ToDictionary(p => p.Key, p => p.Value is null ? null : FromJson(p.Value)),
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        _ => node.ToString(),
    };

    static TextRecord ToRecord(Func<string, object?> get, string? field, string where)
    {
        foreach (var name in field is null ? DefaultFields : [field])
        {
            var value = get(name);
            if (value is null)
                continue;
            return value switch
            {
                string text => new TextRecord(Text: text),
                IEnumerable list when name == "input_ids" || IsNumberList(list) => new TextRecord(Ids: ToIds(list, where)),
                IEnumerable list => new TextRecord(Messages: ToMessages(list, where)),
                _ => throw new LlmqException($"{where}: field '{name}' is neither text, token ids nor a list of messages"),
            };
        }
        throw new LlmqException(field is null
            ? $"{where}: no 'text', 'messages', 'conversations' or 'input_ids' field (name the text field with --text-field)"
            : $"{where}: no '{field}' field");
    }

    static bool IsNumberList(IEnumerable list)
    {
        foreach (var item in list)
            return item is int or long or short or uint;
        return false;
    }

    static int[] ToIds(IEnumerable list, string where)
    {
        var ids = new List<int>();
        foreach (var item in list)
            ids.Add(item switch
            {
                int i => i,
                long l when l is >= 0 and <= int.MaxValue => (int)l,
                _ => throw new LlmqException($"{where}: input_ids holds '{item}', not a token id"),
            });
        return [.. ids];
    }

    static List<ChatMessage> ToMessages(IEnumerable list, string where)
    {
        var messages = new List<ChatMessage>();
        foreach (var item in list)
        {
            if (item is not IDictionary<string, object?> and not IDictionary<string, object>)
                throw new LlmqException($"{where}: a message is not an object with role and content");
            string? Get(string key) => item switch
            {
                IDictionary<string, object?> d when d.TryGetValue(key, out var v) => Content(v),
                IDictionary<string, object> d when d.TryGetValue(key, out var v) => Content(v),
                _ => null,
            };
            var role = Get("role") ?? Get("from") ?? throw new LlmqException($"{where}: a message has no 'role'");
            var content = Get("content") ?? Get("value") ?? "";
            messages.Add(new ChatMessage(role switch { "human" => "user", "gpt" => "assistant", _ => role }, content));
        }
        return messages;
    }

    /// <summary>A message's content: a string, or the text parts of a multimodal list ([{type:text,text:...}]).</summary>
    static string? Content(object? value) => value switch
    {
        string s => s,
        IEnumerable parts => string.Concat(parts.Cast<object?>().Select(p => p switch
        {
            IDictionary<string, object?> d when d.TryGetValue("text", out var t) => t as string,
            IDictionary<string, object> d when d.TryGetValue("text", out var t) => t as string,
            _ => null,
        })),
        _ => value?.ToString(),
    };
}
