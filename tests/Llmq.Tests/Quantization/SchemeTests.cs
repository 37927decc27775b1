using System.Text.Json.Nodes;
using Llmq.Quantization;

namespace Llmq.Tests.Quantization;

public class SchemeTests
{
    static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    [Fact]
    public void W4A16MatchesTheSpecExample()
    {
        var scheme = SchemePresets.Get("w4a16");
        var expected = Parse("""
            {"format": "pack-quantized", "input_activations": null, "output_activations": null, "targets": ["Linear"],
             "weights": {"actorder": null, "block_structure": null, "dynamic": false, "group_size": 128, "num_bits": 4,
               "observer": "memoryless_minmax", "observer_kwargs": {}, "scale_dtype": null, "strategy": "group",
               "symmetric": true, "type": "int", "zp_dtype": null}}
            """);
        Assert.True(JsonNode.DeepEquals(expected, scheme.ToJson()), scheme.ToJson().ToJsonString());
        var asym = SchemePresets.Get("W4A16_ASYM").Weights!.ToJson();
        Assert.False(asym["symmetric"]!.GetValue<bool>());
        Assert.Equal("torch.int8", asym["zp_dtype"]!.GetValue<string>());
    }

    [Fact]
    public void Nvfp4MatchesTheSpecExample()
    {
        var expected = Parse("""
            {"format": "nvfp4-pack-quantized", "targets": ["Linear"],
             "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": true, "dynamic": false,
                "actorder": null, "block_structure": null, "observer": "memoryless_minmax", "observer_kwargs": {},
                "scale_dtype": "torch.float8_e4m3fn", "zp_dtype": null},
             "input_activations": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": true,
                "dynamic": "local", "actorder": null, "block_structure": null, "observer": "static_minmax", "observer_kwargs": {},
                "scale_dtype": "torch.float8_e4m3fn", "zp_dtype": null},
             "output_activations": null}
            """);
        var actual = SchemePresets.Get("NVFP4").ToJson();
        Assert.True(JsonNode.DeepEquals(expected, actual), actual.ToJsonString());
    }

    [Theory]
    [InlineData("W4A16", "pack-quantized", 4, "int", "group", 128, null)]
    [InlineData("W8A16", "pack-quantized", 8, "int", "group", 128, null)]
    [InlineData("W8A8", "int-quantized", 8, "int", "channel", null, "token")]
    [InlineData("FP8", "float-quantized", 8, "float", "tensor", null, "tensor")]
    [InlineData("FP8_DYNAMIC", "float-quantized", 8, "float", "channel", null, "token")]
    [InlineData("FP8_BLOCK", "float-quantized", 8, "float", "block", null, "group")]
    [InlineData("NVFP4A16", "nvfp4-pack-quantized", 4, "float", "tensor_group", 16, null)]
    [InlineData("MXFP4", "mxfp4-pack-quantized", 4, "float", "group", 32, "group")]
    public void PresetsHaveTheSpecArgs(string name, string format, int bits, string type, string strategy, int? group, string? inputStrategy)
    {
        var s = SchemePresets.Get(name);
        var w = s.ToJson()["weights"]!;
        Assert.Equal(format, s.ResolvedFormat);
        Assert.Equal(bits, w["num_bits"]!.GetValue<int>());
        Assert.Equal(type, w["type"]!.GetValue<string>());
        Assert.Equal(strategy, w["strategy"]!.GetValue<string>());
        Assert.Equal(group, w["group_size"]?.GetValue<int>());
        Assert.Equal(inputStrategy, s.ToJson()["input_activations"]?["strategy"]!.GetValue<string>());
        // JSON round trip keeps every field.
        var back = QuantizationScheme.FromJson(s.ToJson());
        Assert.True(JsonNode.DeepEquals(s.ToJson(), back.ToJson()));
    }

    [Fact]
    public void Fp8PresetsHaveTheirDetails()
    {
        Assert.Equal(new[] { 128, 128 }, SchemePresets.Get("FP8_BLOCK").Weights!.BlockStructure);
        Assert.Equal("static_minmax", SchemePresets.Get("FP8").InputActivations!.Observer);
        Assert.True(SchemePresets.Get("FP8").NeedsActivationStatistics);
        Assert.True(SchemePresets.Get("NVFP4").NeedsActivationStatistics);
        Assert.False(SchemePresets.Get("FP8_DYNAMIC").NeedsActivationStatistics);
        Assert.Null(SchemePresets.Get("FP8_DYNAMIC").InputActivations!.Observer);
        Assert.Equal("torch.uint8", SchemePresets.Get("MXFP4").Weights!.ScaleDtype);
        Assert.Throws<LlmqException>(() => SchemePresets.Get("W3A5"));
    }

    [Fact]
    public void ValidationAppliesTheSpecRules()
    {
        Assert.Equal(QuantizationStrategy.Group, new QuantizationArgs { GroupSize = 64 }.Validated().Strategy);
        Assert.Equal(QuantizationStrategy.Channel, new QuantizationArgs { GroupSize = -1 }.Validated().Strategy);
        Assert.Equal(QuantizationStrategy.Tensor, new QuantizationArgs().Validated().Strategy);
        Assert.Throws<LlmqException>(() => new QuantizationArgs { Strategy = QuantizationStrategy.Token }.Validated());
        Assert.Throws<LlmqException>(() => new QuantizationArgs { Strategy = QuantizationStrategy.Group }.Validated());
        Assert.Throws<LlmqException>(() => new QuantizationArgs { Strategy = QuantizationStrategy.Block }.Validated());
        Assert.Throws<LlmqException>(() => new QuantizationArgs { Dynamic = DynamicMode.Local, Strategy = QuantizationStrategy.Tensor }.Validated());
        Assert.Null(new QuantizationArgs { Strategy = QuantizationStrategy.Channel, ActOrder = "group" }.Validated().ActOrder);
        var parsed = QuantizationArgs.FromJson(Parse("""{"num_bits": 8, "type": "FLOAT", "strategy": "block", "block_structure": "128x128", "actorder": true}"""));
        Assert.Equal(new[] { 128, 128 }, parsed.BlockStructure);
        Assert.Null(parsed.ActOrder);   // true → group, dropped for block
    }
}
