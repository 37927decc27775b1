using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Quantization;

namespace Llmq.Tests.Formats.CompressedTensors;

public class QuantizerTests
{
    static float GlobalScale(Checkpoint c, string module) => c.ReadFloat32(module + ".weight_global_scale")[0];

    [Fact]
    public void Nvfp4FusedSetsShareTheSmallestGlobalScale()
    {
        using var tmp = new TempDirectory();
        RandomModel.Write(tmp["in"], RoundTripTests.Spec("llama") with { NumLayers = 2 }, seed: 3);
        RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "NVFP4A16" });
        using var src = Checkpoint.Open(tmp["in"]);
        using var q = Checkpoint.Open(tmp["out"]);
        float Own(string m) => QParams.TensorGroupGlobalScale(src.ReadFloat32(m + ".weight").Max(MathF.Abs));
        for (int layer = 0; layer < 2; layer++)
        {
            string p = $"model.layers.{layer}.";
            string[] qkv = [p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"];
            string[] gateUp = [p + "mlp.gate_proj", p + "mlp.up_proj"];
            foreach (var set in new[] { qkv, gateUp })
            {
                float expected = set.Min(Own);
                Assert.All(set, m => Assert.Equal(expected, GlobalScale(q, m)));
                Assert.Contains(set, m => Own(m) != expected);   // the sharing really changed something
            }
            Assert.Equal(Own(p + "self_attn.o_proj"), GlobalScale(q, p + "self_attn.o_proj"));
            Assert.Equal(Own(p + "mlp.down_proj"), GlobalScale(q, p + "mlp.down_proj"));
            // The FP8 group scales were computed after the sharing: they match an observer run with the shared value.
            var w = src.ReadFloat32(p + "self_attn.k_proj.weight");
            var qp = MinMaxObserver.Instance.Compute(w, 128, 256, SchemePresets.Get("NVFP4A16").Weights!, ModelPrecision.BFloat16, GlobalScale(q, p + "self_attn.k_proj"));
            Assert.Equal(qp.Scale.Select(Llmq.Numerics.Float8E4M3.FromFloat), q.Bytes(p + "self_attn.k_proj.weight_scale").ToArray());
        }
    }

    [Fact]
    public void FusedQkvModelIsLeftAsIs()
    {
        using var tmp = new TempDirectory();
        Directory.CreateDirectory(tmp["in"]);
        var rng = new Random(5);
        float[] Rand(int n, float s) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * s).ToArray();
        using (var w = new SafetensorsWriter(tmp["in"]))
        {
            w.AddFloat32("model.embed_tokens.weight", [32, 64], Rand(32 * 64, 1), DType.BF16);
            w.AddFloat32("model.layers.0.self_attn.qkv_proj.weight", [192, 64], Rand(192 * 64, 2), DType.BF16);
            w.AddFloat32("model.layers.0.self_attn.o_proj.weight", [64, 64], Rand(64 * 64, 3), DType.BF16);
            w.AddFloat32("model.layers.0.mlp.gate_up_proj.weight", [256, 64], Rand(256 * 64, 4), DType.BF16);
            w.AddFloat32("model.layers.0.mlp.down_proj.weight", [64, 128], Rand(64 * 128, 5), DType.BF16);
            w.AddFloat32("model.norm.weight", [64], Rand(64, 1), DType.BF16);
            w.AddFloat32("lm_head.weight", [32, 64], Rand(32 * 64, 1), DType.BF16);
            w.Finish();
        }
        File.WriteAllText(tmp["in/config.json"], """{"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 32}""");
        RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "NVFP4A16" });
        using var src = Checkpoint.Open(tmp["in"]);
        using var q = Checkpoint.Open(tmp["out"]);
        foreach (var m in new[] { "model.layers.0.self_attn.qkv_proj", "model.layers.0.mlp.gate_up_proj", "model.layers.0.self_attn.o_proj" })
            Assert.Equal(QParams.TensorGroupGlobalScale(src.ReadFloat32(m + ".weight").Max(MathF.Abs)), GlobalScale(q, m));
    }

    [Fact]
    public void OutputIsRefusedUnlessOverwriteAndInputIsUntouched()
    {
        using var tmp = new TempDirectory();
        RandomModel.Write(tmp["in"], RoundTripTests.Spec("llama"), seed: 1);
        File.WriteAllText(tmp["in/tokenizer.json"], "{}");
        var before = Directory.EnumerateFiles(tmp["in"]).ToDictionary(f => f, File.ReadAllBytes);
        Directory.CreateDirectory(tmp["out"]);
        Assert.Throws<LlmqException>(() => RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "W4A16" }));
        var result = RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "W4A16", Overwrite = true, Ignore = ["re:.*down_proj$"] });
        Assert.Equal(6, result.QuantizedModules);
        Assert.Equal(before.Keys.Order(), Directory.EnumerateFiles(tmp["in"]).Order());
        foreach (var (f, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(f));
        Assert.True(File.Exists(tmp["out/tokenizer.json"]));
        Assert.Empty(Directory.EnumerateDirectories(tmp.Path, ".out.tmp-*"));
        var config = JsonNode.Parse(File.ReadAllText(tmp["out/config.json"]))!;
        // User regexes are expanded into explicit names after the default lm_head.
        Assert.Equal(["model.layers.0.mlp.down_proj", "lm_head"], config["quantization_config"]!["ignore"]!.AsArray().Select(x => x!.GetValue<string>()));
        // Keys sorted at every level, as compressed-tensors dumps them.
        var keys = config.AsObject().Select(p => p.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
    }

    [Fact]
    public void PreflightRejectsBadPlans()
    {
        using var tmp = new TempDirectory();
        RandomModel.Write(tmp["in"], RandomModelSpec.TinyLlama, seed: 1);
        var e = Assert.Throws<LlmqException>(() => RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "W4A16" }));
        Assert.Contains("group_size 128", e.Message);
        e = Assert.Throws<LlmqException>(() => RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "FP8" }));
        Assert.Contains("calibration", e.Message);
        e = Assert.Throws<LlmqException>(() => RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "FP8_DYNAMIC", Ignore = ["re:.*k_proj"] }));
        Assert.Contains("fused set", e.Message);
        Assert.False(Directory.Exists(tmp["out"]));
        RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = "FP8_DYNAMIC" });
        e = Assert.Throws<LlmqException>(() => RoundTripTests.Quantize(tmp["out"], tmp["again"], new QuantizeOptions { Scheme = "FP8_DYNAMIC" }));
        Assert.Contains("already quantized", e.Message);
    }

    [Fact]
    public void MseObserverIsRecordedAndUsed()
    {
        using var tmp = new TempDirectory();
        RandomModel.Write(tmp["in"], RandomModelSpec.TinyMistral, seed: 2);
        RoundTripTests.Quantize(tmp["in"], tmp["mse"], new QuantizeOptions { Scheme = "MXFP4", WeightObserver = "mse" });
        RoundTripTests.Quantize(tmp["in"], tmp["mm"], new QuantizeOptions { Scheme = "MXFP4" });
        var config = JsonNode.Parse(File.ReadAllText(tmp["mse/config.json"]))!;
        Assert.Equal("mse", config["quantization_config"]!["config_groups"]!["group_0"]!["weights"]!["observer"]!.GetValue<string>());
        using var src = Checkpoint.Open(tmp["in"]);
        using var a = CompressedCheckpoint.Open(tmp["mse"]);
        using var b = CompressedCheckpoint.Open(tmp["mm"]);
        double Err(CompressedCheckpoint c)
        {
            var w = src.ReadFloat32("model.layers.0.mlp.up_proj.weight");
            var d = new float[w.Length];
            c.ReadFloat32("model.layers.0.mlp.up_proj.weight", d);
            return w.Zip(d).Sum(p => Math.Pow(p.First - p.Second, 2));
        }
        Assert.True(Err(a) < Err(b));
    }
}
