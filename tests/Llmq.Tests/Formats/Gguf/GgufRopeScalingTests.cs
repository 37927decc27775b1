using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Evaluation;
using Llmq.Formats.Gguf;
using Llmq.Models;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>rope_scaling through the GGUF: 'llama3' (Llama 3.1/3.2) becomes convert_hf_to_gguf.py's rope_freqs.weight — per
/// rotary frequency the divisor llama.cpp applies, no metadata key — and 'linear' its two llama.rope.scaling.* keys; read
/// back (GgufTensorSource, `llmq eval`), the GGUF runs with the same rotary frequencies as the safetensors model, so its
/// logits are the safetensors model's. No rope_scaling, rope_scaling null and 'default' add nothing; other types are refused.</summary>
public class GgufRopeScalingTests
{
    /// <summary>head_dim 16, theta 10000: wavelengths 2π·10^(i/2) = 6.3, 19.9, 62.8, 199, … against original context 64 with
    /// low/high_freq_factor 1/4 (bands at 16 and 64): frequency 0 kept, 1 and 2 blended, 3–7 divided by the factor.</summary>
    static readonly JsonObject Llama3 = new()
    {
        ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
        ["original_max_position_embeddings"] = 64,
    };

    static string WriteModel(TempDirectory dir, JsonNode? ropeScaling, bool withKey = true)
    {
        var model = dir["model"];
        RandomModel.Write(model, RandomModelSpec.TinyLlama with { DType = DType.F32 }, seed: 11);
        var configPath = Path.Combine(model, ModelConfig.FileName);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        if (withKey) config["rope_scaling"] = ropeScaling?.DeepClone();
        File.WriteAllText(configPath, config.ToJsonString());
        return model;
    }

    [Fact]
    public void Llama3FactorsAreTheRuntimesRescaledFrequenciesAsDivisors()
    {
        using var dir = new TempDirectory();
        var config = ModelConfig.Load(WriteModel(dir, Llama3));
        var factors = GgufConverter.RopeFrequencyFactors(config)!;
        Assert.Equal(8, factors.Length);
        Assert.Equal(1f, factors[0]);
        Assert.All(factors[3..], f => Assert.Equal(8f, f));
        // blended: s = (64 / wavelength − 1) / 3, divisor 1 / ((1 − s)/8 + s)
        double wavelength1 = 2 * Math.PI * Math.Pow(10, 0.5), s = (64 / wavelength1 - 1) / 3;
        Assert.Equal(1 / ((1 - s) / 8 + s), factors[1], 1e-5);
        var scaled = new RotaryEmbedding(16, 10000, Llama3).InverseFrequencies;
        var plain = new RotaryEmbedding(16, 10000).InverseFrequencies;
        for (int i = 0; i < 8; i++)
            Assert.Equal(1, plain[i] / factors[i] / scaled[i], 1e-6);
    }

    [Fact]
    public void ReadBackTheFactorsAreLlama3WithTheConfigsNumbers()
    {
        using var dir = new TempDirectory();
        var model = WriteModel(dir, Llama3);
        var path = GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.F32 }).Path;
        using (var source = GgufTensorSource.Open(path))
            Assert.True(JsonNode.DeepEquals(Llama3, source.Config.RopeScaling), source.Config.RopeScaling?.ToJsonString());

        // what `llmq decompress` writes is a config Hugging Face reads: 'llama3', not the factors
        var back = GgufDecompressor.Decompress(path, dir["back"], DType.F32, overwrite: false);
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(back, ModelConfig.FileName)))!["rope_scaling"];
        Assert.Equal("llama3", written?["rope_type"]?.GetValue<string>());
    }

    [Fact]
    public void Llama32sScalingIsFoundFromItsFactorsAndOthersAreNot()
    {
        // Llama-3.2-1B: head_dim 64, theta 500000, factor 32, bands 1/4, original context 8192
        var config = ModelConfig.Parse(new JsonObject
        {
            ["hidden_size"] = 2048, ["intermediate_size"] = 8192, ["num_hidden_layers"] = 16, ["num_attention_heads"] = 32,
            ["num_key_value_heads"] = 8, ["head_dim"] = 64, ["vocab_size"] = 128256, ["rope_theta"] = 500000.0,
            ["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
                ["original_max_position_embeddings"] = 8192,
            },
        });
        var factors = GgufConverter.RopeFrequencyFactors(config)!;
        var found = GgufConverter.Llama3Scaling(factors, 500000, 64);
        Assert.True(JsonNode.DeepEquals(config.RopeScaling, found), found?.ToJsonString());

        // factors no llama3 scaling makes stay factors
        var nudged = factors.ToArray();
        nudged[Array.FindIndex(nudged, f => f > 1 && f < 32)] *= 1.001f;
        Assert.Null(GgufConverter.Llama3Scaling(nudged, 500000, 64));
        Assert.Null(GgufConverter.Llama3Scaling(Enumerable.Repeat(2f, 32).ToArray(), 500000, 64));
        Assert.Null(GgufConverter.Llama3Scaling(factors, 500000, 128));   // not this head size
    }

    [Theory]
    [InlineData("llama3"), InlineData("linear")]
    public void ScaledGgufEvaluatesAsTheSafetensors(string type)
    {
        using var dir = new TempDirectory();
        var scaling = type == "llama3" ? Llama3 : new JsonObject { ["rope_type"] = "linear", ["factor"] = 4.0 };
        var model = WriteModel(dir, scaling);
        var path = GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.F32 }).Path;
        using (var r = GgufReader.Open(path))
        {
            Assert.Equal(type == "llama3", r.Contains(GgufTensorNames.RopeFrequencies));
            Assert.Equal(type == "linear", r.Metadata.ContainsKey("llama.rope.scaling.type"));
            if (type == "llama3")
            {
                var info = r.Info(GgufTensorNames.RopeFrequencies);
                Assert.Equal(GgmlType.F32, info.Type);
                Assert.Equal([8L], info.Dimensions);
                Assert.Equal(GgufConverter.RopeFrequencyFactors(ModelConfig.Load(model)), r.ReadFloat32(GgufTensorNames.RopeFrequencies));
                Assert.Equal(["output.weight", "output_norm.weight", "rope_freqs.weight", "token_embd.weight"], r.Tensors.Take(4).Select(t => t.Name));
            }
        }

        var tokens = Enumerable.Range(0, 48).Select(i => (i * 37 + 5) % 256).ToArray();   // 48 positions: every band turns
        using var gguf = EvaluationModel.Open(path);
        using var dense = EvaluationModel.Open(model);
        var expected = dense.Model.Forward(tokens);
        var actual = gguf.Model.Forward(tokens);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        TestContext.Current.TestOutputHelper?.WriteLine($"{type}: max |GGUF − safetensors| logit {worst:G3}");
        Assert.True(worst < 1e-4, $"GGUF logits differ from the safetensors ones by up to {worst}");

        // the same weights without the scaling are far off: the comparison above sees the rotary frequencies
        using var source = GgufTensorSource.Open(path);
        var unscaled = source.Config.Json.DeepClone().AsObject();
        unscaled.Remove("rope_scaling");
        var wrong = new DecoderModel(source, ModelConfig.Parse(unscaled)).Forward(tokens);
        Assert.True(expected.Zip(wrong, (a, b) => Math.Abs(a - b)).Max() > 100 * worst + 1e-3);
    }

    [Theory]
    [InlineData("absent"), InlineData("null"), InlineData("default")]
    public void NoScalingAddsNothing(string how)
    {
        using var dir = new TempDirectory();
        var model = how switch
        {
            "absent" => WriteModel(dir, null, withKey: false),
            "null" => WriteModel(dir, null),
            _ => WriteModel(dir, new JsonObject { ["rope_type"] = "default" }),
        };
        var path = GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions { FileType = GgufFileType.Q8_0 }).Path;
        using var r = GgufReader.Open(path);
        Assert.False(r.Contains(GgufTensorNames.RopeFrequencies));
        Assert.DoesNotContain(r.Metadata.Keys, k => k.StartsWith("llama.rope.scaling", StringComparison.Ordinal));
        using var source = GgufTensorSource.Open(path);
        Assert.Null(source.Config.RopeScaling);
    }

    [Fact]
    public void UnsupportedScalingIsRefusedBeforeAnythingIsWritten()
    {
        using var dir = new TempDirectory();
        var model = WriteModel(dir, new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 });
        var e = Assert.Throws<LlmqException>(() => GgufConverter.Convert(model, dir["m.gguf"], new GgufConvertOptions()));
        Assert.Contains("yarn", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path, "*m.gguf*"));
    }
}
