using Llmq.Checkpoints;

namespace Llmq.Tests.Checkpoints;

public class RandomModelTests : TempDirectoryTests
{
    public static TheoryData<string> Presets => ["TinyLlama", "TinyMistral", "TinyQwen2", "TinyQwen3"];

    static RandomModelSpec Preset(string name) => name switch
    {
        "TinyLlama" => RandomModelSpec.TinyLlama,
        "TinyMistral" => RandomModelSpec.TinyMistral,
        "TinyQwen2" => RandomModelSpec.TinyQwen2,
        _ => RandomModelSpec.TinyQwen3,
    };

    [Theory]
    [MemberData(nameof(Presets))]
    public void WritesALoadableModelOfTheSpecShape(string preset)
    {
        var spec = Preset(preset);
        RandomModel.Write(temp.Path, spec, seed: 1);
        var config = ModelConfig.Load(temp.Path);
        Assert.Equal(spec.Architecture, config.Architecture);
        Assert.Equal(spec.ResolvedHeadDim, config.HeadDim);
        Assert.Equal(spec.QkvBias, config.AttentionBias);
        Assert.Equal(spec.TieWordEmbeddings, config.TieWordEmbeddings);
        using var checkpoint = Checkpoint.Open(temp.Path);
        Assert.Equal(spec.ParameterCount, checkpoint.Tensors.Sum(t => t.ElementCount));
        Assert.All(checkpoint.Tensors, t => Assert.Equal(DType.BF16, t.DType));
        Assert.Equal([(long)spec.NumHeads * spec.ResolvedHeadDim, spec.HiddenSize], checkpoint.Shape("model.layers.1.self_attn.q_proj.weight"));
        Assert.Equal(spec.QkvBias, checkpoint.Contains("model.layers.0.self_attn.k_proj.bias"));
        Assert.Equal(spec.QkNorm, checkpoint.Contains("model.layers.0.self_attn.k_norm.weight"));
        Assert.Equal(!spec.TieWordEmbeddings, checkpoint.Contains("lm_head.weight"));
    }

    [Fact]
    public void WeightsHaveRealisticScaleAndAreDeterministic()
    {
        var spec = RandomModelSpec.TinyLlama with { DType = DType.F32 };
        RandomModel.Write(temp["a"], spec, seed: 7);
        RandomModel.Write(temp["b"], spec, seed: 7, maxShardBytes: 100_000);
        RandomModel.Write(temp["c"], spec, seed: 8);
        using var a = Checkpoint.Open(temp["a"]);
        using var b = Checkpoint.Open(temp["b"]);
        using var c = Checkpoint.Open(temp["c"]);
        Assert.True(b.Files.Count > 1);
        var down = a.ReadFloat32("model.layers.0.mlp.down_proj.weight");
        Assert.Equal(down, b.ReadFloat32("model.layers.0.mlp.down_proj.weight"));
        Assert.NotEqual(down, c.ReadFloat32("model.layers.0.mlp.down_proj.weight"));
        double std = Math.Sqrt(down.Average(v => (double)v * v));
        Assert.InRange(std * Math.Sqrt(spec.IntermediateSize), 0.95, 1.05);
        Assert.InRange(down.Average(), -0.01, 0.01);
        var norm = a.ReadFloat32("model.norm.weight");
        Assert.InRange(norm.Average(), 0.98, 1.02);
        Assert.NotEqual(a.ReadFloat32("model.layers.0.self_attn.q_proj.weight"), a.ReadFloat32("model.layers.1.self_attn.q_proj.weight"));
    }

    [Fact]
    public void LargePresetsHaveTheRealParameterCounts()
    {
        Assert.Equal(494_032_768, RandomModelSpec.Qwen2_0_5B.ParameterCount); // Qwen2.5-0.5B
        Assert.Equal(1_235_814_400, RandomModelSpec.Llama1B.ParameterCount); // Llama-3.2-1B
    }
}
