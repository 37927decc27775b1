using Llmq.Quantization;

namespace Llmq.Tests.Quantization;

public class MatchingTests
{
    [Fact]
    public void MatchesNamesRegexesAndClasses()
    {
        var w4 = SchemePresets.Get("W4A16");
        var fp8 = SchemePresets.Get("FP8_DYNAMIC", ["re:.*down_proj$", "model.layers.0.self_attn.o_proj"]);
        var m = new ModuleMatcher([w4, fp8], ["lm_head", "re:.*layers\\.1\\."]);
        Assert.Equal(0, m.GroupOf("model.layers.0.self_attn.q_proj", "Linear"));
        Assert.Equal(1, m.GroupOf("model.layers.0.mlp.down_proj", "Linear"));        // regex beats class name
        Assert.Equal(1, m.GroupOf("model.layers.0.self_attn.o_proj", "Linear"));     // exact name beats class name
        Assert.Equal(-1, m.GroupOf("lm_head", "Linear"));
        Assert.Equal(-1, m.GroupOf("model.layers.1.mlp.up_proj", "Linear"));         // ignored by regex
        Assert.Equal(-1, m.GroupOf("model.embed_tokens", "Embedding"));
        Assert.Equal(-1, m.GroupOf("model.layers.0.mlp.down_proj_extra", "Other"));  // the regex is anchored at the end by $
        Assert.True(m.Matches("re:model\\.layers", "model.layers.5.x", "Linear"));    // re.match anchors at the start only
        Assert.False(m.Matches("re:layers", "model.layers.5.x", "Linear"));
    }

    [Fact]
    public void LaterGroupWinsForTheSameTarget()
    {
        var m = new ModuleMatcher([SchemePresets.Get("W4A16"), SchemePresets.Get("W8A16")], []);
        Assert.Equal(1, m.GroupOf("a.b", "Linear"));
    }

    [Fact]
    public void ClassesAreInferredFromTensors()
    {
        Assert.Equal("Embedding", ModuleMatcher.ClassOf("model.embed_tokens", 2));
        Assert.Equal("Linear", ModuleMatcher.ClassOf("lm_head", 2));
        Assert.Equal("Other", ModuleMatcher.ClassOf("model.norm", 1));
    }

    [Fact]
    public void FusedSetsShareTheSmallestGlobalScale()
    {
        var amax = new Dictionary<string, float>
        {
            ["model.layers.0.self_attn.q_proj"] = 2f, ["model.layers.0.self_attn.k_proj"] = 8f, ["model.layers.0.self_attn.v_proj"] = 4f,
            ["model.layers.0.self_attn.o_proj"] = 3f,
            ["model.layers.0.mlp.gate_proj"] = 1f, ["model.layers.0.mlp.up_proj"] = 5f, ["model.layers.0.mlp.down_proj"] = 7f,
            ["model.layers.1.self_attn.qkv_proj"] = 6f, ["model.layers.1.mlp.gate_up_proj"] = 2f,   // already fused: left as is
        };
        var g = FusedLayers.GlobalScales(amax);
        float qkv = new[] { 2f, 8f, 4f }.Select(QParams.TensorGroupGlobalScale).Min();
        Assert.Equal(2688f / 8f, qkv);
        foreach (var p in new[] { "q_proj", "k_proj", "v_proj" }) Assert.Equal(qkv, g["model.layers.0.self_attn." + p]);
        Assert.Equal(2688f / 5f, g["model.layers.0.mlp.gate_proj"]);
        Assert.Equal(2688f / 5f, g["model.layers.0.mlp.up_proj"]);
        Assert.Equal(2688f / 3f, g["model.layers.0.self_attn.o_proj"]);
        Assert.Equal(2688f / 7f, g["model.layers.0.mlp.down_proj"]);
        Assert.Equal(2688f / 6f, g["model.layers.1.self_attn.qkv_proj"]);
        Assert.Equal(2688f / 2f, g["model.layers.1.mlp.gate_up_proj"]);
        var split = FusedLayers.SplitSets(amax.Keys, new HashSet<string>(["model.layers.0.self_attn.q_proj"])).ToList();
        Assert.Single(split);
    }
}
