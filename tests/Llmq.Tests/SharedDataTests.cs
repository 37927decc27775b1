namespace Llmq.Tests;

public class SharedDataTests
{
    [Fact]
    public void FindsTheStoriesModel()
    {
        var config = SharedData.Path("models/stories260K-hf/config.json");
        Assert.Contains("LlamaForCausalLM", File.ReadAllText(config));
    }
}
