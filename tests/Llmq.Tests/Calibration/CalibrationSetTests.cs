using Llmq.Calibration;
using Llmq.Tokenization;

namespace Llmq.Tests.Calibration;

public class CalibrationSetTests
{
    static TextSource Numbered(int count, int length) =>
        TextSource.FromIds("ids", Enumerable.Range(0, count).Select(r => Enumerable.Range(r * 1000, length).ToArray()).ToList());

    [Fact]
    public void ConcatenateGivesFullChunksOfTheShuffledStream()
    {
        var samples = CalibrationSet.Build(Numbered(20, 30), null, new() { Samples = 5, SeqLen = 64, Seed = 1 });
        Assert.Equal(5, samples.Length);
        Assert.All(samples, s => Assert.Equal(64, s.Length));
        // Records stay whole and in order inside the stream: each id is followed by id+1 unless a record ended.
        var stream = samples.SelectMany(s => s).ToArray();
        for (int i = 1; i < stream.Length; i++)
            Assert.True(stream[i] == stream[i - 1] + 1 || stream[i] % 1000 == 0);
        Assert.Equal(samples, CalibrationSet.Build(Numbered(20, 30), null, new() { Samples = 5, SeqLen = 64, Seed = 1 }));
        Assert.NotEqual(samples, CalibrationSet.Build(Numbered(20, 30), null, new() { Samples = 5, SeqLen = 64, Seed = 2 }));
    }

    [Fact]
    public void ConcatenateStopsWhenDataRunsOut()
    {
        var samples = CalibrationSet.Build(Numbered(3, 50), null, new() { Samples = 10, SeqLen = 64 });
        Assert.Equal(2, samples.Length);   // 150 tokens → two full chunks; the 22-token rest is dropped
    }

    [Fact]
    public void TruncateKeepsOneSamplePerRecord()
    {
        var source = TextSource.FromIds("ids", [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]);
        var samples = CalibrationSet.Build(source, null, new() { Samples = 10, SeqLen = 4, Packing = CalibrationPacking.Truncate });
        Assert.Equal(3, samples.Length);
        Assert.Contains([1, 2, 3, 4], samples);
        Assert.Contains([6, 7], samples);
    }

    [Fact]
    public void TextWithoutTokenizerIsAClearError()
    {
        var e = Assert.Throws<LlmqException>(() => CalibrationSet.Build(TextSource.FromText("t", "hello"), null, new()));
        Assert.Contains("input_ids", e.Message);
    }

    [Fact]
    public void BuiltInTextCalibratesStories260K()
    {
        var tok = ModelTokenizer.Load(SharedData.Path("models/stories260K-hf"));
        var samples = CalibrationSet.Build(CalibrationSet.BuiltIn, tok, new() { Samples = 16, SeqLen = 256 });
        Assert.Equal(16, samples.Length);
        Assert.All(samples, s => Assert.Equal(256, s.Length));
        Assert.All(samples, s => Assert.All(s, id => Assert.InRange(id, 0, tok.VocabSize - 1)));
        Assert.True(CalibrationSet.BuiltIn.Records().Count() > 30);
    }

    [Fact]
    public void ChatMlTemplateRendersTurns()
    {
        var text = ChatFormat.Render([new("system", "Be brief."), new("user", "Hi")], "{% for m in messages %}<|im_start|>{{ m.role }}...", null);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n", text);
        Assert.Equal("user: Hi\n\n", ChatFormat.Render([new("user", "Hi")], null, null));
    }
}
