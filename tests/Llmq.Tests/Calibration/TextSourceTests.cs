using Llmq.Calibration;
using Parquet.Schema;
using Parquet.Serialization;

namespace Llmq.Tests.Calibration;

public sealed class TextSourceTests : IDisposable
{
    readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("llmq-text-");
    public void Dispose() => _dir.Delete(recursive: true);
    string File(string name, string content)
    {
        var path = Path.Combine(_dir.FullName, name);
        System.IO.File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void PlainTextIsSplitIntoTrimmedParagraphs()
    {
        var path = File("a.txt", "First para\nstill first.  \n\n\n  Second.\r\n \r\nThird\n");
        var texts = TextSource.Open(path).Records().Select(r => r.Text!).ToArray();
        Assert.Equal(["First para\nstill first.", "Second.", "Third"], texts);
    }

    [Fact]
    public void JsonLinesWithTextMessagesAndIds()
    {
        var path = File("d.jsonl", """
            {"text": "hello there", "id": 3}

            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]}
            {"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}
            {"input_ids": [1, 5, 9]}
            """);
        var records = TextSource.Open(path).Records().ToArray();
        Assert.Equal(4, records.Length);
        Assert.Equal("hello there", records[0].Text);
        Assert.Equal([new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello")], records[1].Messages);
        Assert.Equal([new ChatMessage("user", "Q?"), new ChatMessage("assistant", "A.")], records[2].Messages);
        Assert.Equal([1, 5, 9], records[3].Ids!);
    }

    [Fact]
    public void JsonLinesNamedFieldAndErrorsNameTheLine()
    {
        var path = File("d.jsonl", "{\"body\": \"x\"}\n{\"body\": 5}\n");
        var e = Assert.Throws<LlmqException>(() => TextSource.Open(path).Records().ToArray());
        Assert.Contains("d.jsonl:1", e.Message);
        Assert.Equal("x", TextSource.Open(path, "body").Records().First().Text);
        var broken = File("b.jsonl", "{\"text\": \"ok\"}\n{not json\n");
        e = Assert.Throws<LlmqException>(() => TextSource.Open(broken).Records().ToArray());
        Assert.Contains("b.jsonl:2", e.Message);
    }

    [Fact]
    public async Task ParquetAsHuggingFaceDatasetsStoreIt()
    {
        var schema = new ParquetSchema(
            new DataField<string>("text"),
            new ListField("input_ids", new DataField<int>("element")),
            new ListField("messages", new StructField("element", new DataField<string>("role"), new DataField<string>("content"))));
        var rows = new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?>
            {
                ["text"] = "row one", ["input_ids"] = new List<int> { 1, 2, 3 },
                ["messages"] = new List<Dictionary<string, object>> { new() { ["role"] = "user", ["content"] = "hi" } },
            },
            new Dictionary<string, object?>
            {
                ["text"] = "row two", ["input_ids"] = new List<int> { 4 },
                ["messages"] = new List<Dictionary<string, object>> { new() { ["role"] = "assistant", ["content"] = "yo" } },
            },
        };
        var path = Path.Combine(_dir.FullName, "train.parquet");
        await using (var fs = System.IO.File.Create(path))
            await ParquetSerializer.SerializeUntypedAsync(rows, schema, fs, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(["row one", "row two"], TextSource.Open(path).Records().Select(r => r.Text!));
        Assert.Equal([[1, 2, 3], [4]], TextSource.Open(path, "input_ids").Records().Select(r => r.Ids!));
        Assert.Equal([new ChatMessage("assistant", "yo")], TextSource.Open(path, "messages").Records().Last().Messages);
    }

    [Fact]
    public void NotParquetIsReportedWithTheFile()
    {
        var path = File("junk.parquet", "this is not parquet");
        var e = Assert.Throws<LlmqException>(() => TextSource.Open(path).Records().ToArray());
        Assert.Contains("junk.parquet", e.Message);
    }
}
