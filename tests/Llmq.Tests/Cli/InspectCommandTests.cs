using System.CommandLine;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Cli;

namespace Llmq.Tests.Cli;

/// <summary>`llmq inspect` run in-process through the real root command, with output and errors captured.</summary>
public class InspectCommandTests : TempDirectoryTests
{
    internal static (int Exit, string Output, string Error) Llmq(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = Commands.Root().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public void PrintsTheTrueParameterCountOfStories260K()
    {
        var (exit, output, error) = Llmq("inspect", SharedData.Path("models/stories260K-hf"));
        Assert.Equal(0, exit);
        Assert.Equal("", error);
        Assert.Contains("LlamaForCausalLM", output);
        Assert.Contains("260,032", output);
        Assert.Contains("model.safetensors", output);
    }

    [Fact]
    public void JsonForScripts()
    {
        var (exit, output, _) = Llmq("inspect", SharedData.Path("models/stories260K-hf/model.safetensors"), "--json");
        Assert.Equal(0, exit);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(260_032, json["parameter_count"]!.GetValue<long>());
        Assert.Equal("F32", json["d_types"]![0]!["d_type"]!.GetValue<string>());
        Assert.Equal(1_040_128, json["total_bytes"]!.GetValue<long>());
    }

    [Fact]
    public void NotAModelIsOneLineAndExitCode2()
    {
        File.WriteAllText(temp["notes.txt"], "hello");
        foreach (var path in new[] { temp.Path, temp["absent"], temp["notes.txt"] })
        {
            var (exit, output, error) = Llmq("inspect", path);
            Assert.Equal(2, exit);
            Assert.Equal("", output);
            Assert.Single(error.TrimEnd().Split('\n'));
            Assert.StartsWith("llmq: ", error);
        }
    }

    [Fact]
    public void CorruptCheckpointIsOneLineNamingTheFile()
    {
        File.WriteAllBytes(temp["model.safetensors"], [9, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);
        var (exit, _, error) = Llmq("inspect", temp.Path);
        Assert.Equal(2, exit);
        Assert.Contains("model.safetensors", error);
    }

    [Fact]
    public void ShowsQuantization()
    {
        RandomModel.Write(temp.Path, RandomModelSpec.TinyLlama, seed: 1);
        var configPath = temp["config.json"];
        var config = JsonNode.Parse(File.ReadAllText(configPath))!;
        config["quantization_config"] = JsonNode.Parse("""
            {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
             "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": null,
               "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 128}}}}
            """);
        File.WriteAllText(configPath, config.ToJsonString());
        var (exit, output, _) = Llmq("inspect", temp.Path);
        Assert.Equal(0, exit);
        Assert.Contains("compressed-tensors, format pack-quantized", output);
        Assert.Contains("group_0: Linear: weights int4 symmetric group 128, input activations none", output);
        Assert.Contains("ignore: lm_head", output);
    }
}
