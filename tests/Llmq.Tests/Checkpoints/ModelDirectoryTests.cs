using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Tests.Checkpoints;

public class ModelDirectoryTests : TempDirectoryTests
{
    [Fact]
    public void ParsesStoriesConfig()
    {
        var config = ModelConfig.Load(SharedData.Path("models/stories260K-hf"));
        Assert.Equal("LlamaForCausalLM", config.Architecture);
        Assert.Equal("llama", config.ModelType);
        Assert.Equal((64, 5, 8, 4, 8, 172, 512), (config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads,
            config.NumKeyValueHeads, config.HeadDim, config.IntermediateSize, config.VocabSize));
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(10000, config.RopeTheta);
        Assert.Null(config.RopeScaling);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal("float32", config.TorchDtype);
        Assert.False(config.AttentionBias);
        Assert.Null(config.QuantizationConfig);
    }

    [Fact]
    public void AppliesTransformersDefaults()
    {
        var config = ModelConfig.Parse(new JsonObject
        {
            ["model_type"] = "qwen2", ["hidden_size"] = 896, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 14,
            ["intermediate_size"] = 4864, ["vocab_size"] = 100, ["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 },
        });
        Assert.Equal(64, config.HeadDim);
        Assert.Equal(14, config.NumKeyValueHeads);
        Assert.True(config.AttentionBias);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal("yarn", config.RopeScaling!["rope_type"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"hidden_size": 64}""")]
    [InlineData("""{"hidden_size": "64", "num_attention_heads": 8, "num_hidden_layers": 1, "intermediate_size": 1, "vocab_size": 1}""")]
    [InlineData("""[1, 2]""")]
    [InlineData("""{"hidden_size": """)]
    public void BadConfigIsTyped(string json)
    {
        File.WriteAllText(temp["config.json"], json);
        Assert.EndsWith("config.json", Assert.Throws<InvalidCheckpointException>(() => ModelConfig.Load(temp.Path)).File);
    }

    [Fact]
    public void MissingConfigIsAUserError() =>
        Assert.Contains("not a model", Assert.Throws<LlmqException>(() => ModelConfig.Load(temp.Path)).Message);

    [Fact]
    public void CopiesTokenizerAndGenerationFiles()
    {
        var copied = ModelFiles.CopyAuxiliary(SharedData.Path("models/stories260K-hf"), temp["out"]);
        Assert.Equal(["generation_config.json", "sp_vocab_scores.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"], copied);
        Assert.False(File.Exists(temp["out/config.json"]));
        Assert.False(File.Exists(temp["out/model.safetensors"]));
        Assert.Equal(File.ReadAllBytes(SharedData.Path("models/stories260K-hf/tokenizer.json")), File.ReadAllBytes(temp["out/tokenizer.json"]));
    }

    [Fact]
    public void OutputAppearsOnlyWhenPublished()
    {
        var final = temp["out"];
        using (var output = OutputDirectory.Create(final, overwrite: false))
        {
            File.WriteAllText(Path.Combine(output.Path, "a.txt"), "1");
            Assert.False(Directory.Exists(final));
            Assert.Equal(temp.Path, Path.GetDirectoryName(output.Path));
        }
        Assert.False(Directory.Exists(final));
        Assert.Single(Directory.GetFileSystemEntries(temp.Path).Where(p => p.EndsWith("out") || p.Contains(".out.tmp"))
            .DefaultIfEmpty(), p => p is null);

        using (var output = OutputDirectory.Create(final, overwrite: false))
        {
            File.WriteAllText(Path.Combine(output.Path, "a.txt"), "1");
            output.Publish();
        }
        Assert.Equal("1", File.ReadAllText(Path.Combine(final, "a.txt")));
        Assert.Throws<LlmqException>(() => OutputDirectory.Create(final, overwrite: false));

        using (var output = OutputDirectory.Create(final, overwrite: true))
        {
            File.WriteAllText(Path.Combine(output.Path, "b.txt"), "2");
            output.Publish();
        }
        Assert.Equal(["b.txt"], Directory.GetFiles(final).Select(Path.GetFileName));
        Assert.Equal([final], Directory.GetFileSystemEntries(temp.Path));
    }
}
