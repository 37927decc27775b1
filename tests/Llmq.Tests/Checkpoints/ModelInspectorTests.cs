using Llmq.Checkpoints;

namespace Llmq.Tests.Checkpoints;

public class ModelInspectorTests : TempDirectoryTests
{
    [Fact]
    public void ReportsDTypesShardsAndParameters()
    {
        var spec = RandomModelSpec.TinyQwen2;
        RandomModel.Write(temp.Path, spec, seed: 3, maxShardBytes: 60_000);
        var report = ModelInspector.Inspect(temp.Path);
        Assert.Equal("Qwen2ForCausalLM", report.Architecture);
        Assert.Equal(spec.ParameterCount, report.ParameterCount);
        Assert.Equal(2 * spec.ParameterCount, report.TotalBytes);
        Assert.Equal("BF16", Assert.Single(report.DTypes).DType);
        Assert.True(report.Shards.Count > 1);
        Assert.Equal(report.TensorCount, report.Shards.Sum(s => s.Tensors));
        Assert.StartsWith("model-00001-of-", report.Shards[0].File);
        Assert.Null(report.Quantization);
    }

    [Fact]
    public void ReadsGptqQuantizeConfig()
    {
        RandomModel.Write(temp.Path, RandomModelSpec.TinyLlama, seed: 1);
        File.WriteAllText(temp["quantize_config.json"], """{"bits": 4, "group_size": 128, "desc_act": true, "sym": true, "checkpoint_format": "gptq"}""");
        var q = ModelInspector.Inspect(temp.Path).Quantization!;
        Assert.Equal("gptq", q.Method);
        Assert.Equal(["4-bit, group 128, desc_act true, sym true"], q.Schemes);
    }
}
