using System.Text.Json.Nodes;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Quantization;

namespace Llmq.Tests.Formats.CompressedTensors;

/// <summary>Every preset on small random Llama, Qwen2 and Mistral models: tensor names, dtypes, shapes and config fields per
/// the spec, and dequantized weights within each format's rounding bound of the originals.</summary>
public class RoundTripTests
{
    public static readonly string[] Presets = ["W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8", "FP8_DYNAMIC", "FP8_BLOCK", "NVFP4", "NVFP4A16", "MXFP4"];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var arch in new[] { "llama", "qwen2", "mistral" })
            foreach (var p in Presets) data.Add(arch, p);
        return data;
    }

    // Columns of 256 and 384 divide every group size (16, 32, 128); rows of 320 leave FP8_BLOCK a partial block.
    internal static RandomModelSpec Spec(string arch) => arch switch
    {
        "llama" => RandomModelSpec.Llama(256, 1, 4, 2, 384, 64),
        "qwen2" => RandomModelSpec.Qwen2(256, 1, 4, 2, 320, 64) with { IntermediateSize = 384 },
        _ => RandomModelSpec.Mistral(256, 1, 4, 2, 384, 64),
    };

    internal static QuantizeResult Quantize(string input, string output, QuantizeOptions options) =>
        Quantizer.QuantizeModel(input, output, options, cancellation: TestContext.Current.CancellationToken);

    /// <summary>The route <c>llmq quantize</c> takes: datafree streaming, or for static input scales (FP8, NVFP4) the oneshot
    /// pipeline with RTN weights, calibrated here on random token ids.</summary>
    internal static int QuantizeBySomeRoute(string input, string output, string preset)
    {
        var options = new QuantizeOptions { Scheme = preset };
        if (!options.ResolveScheme().NeedsActivationStatistics) return Quantize(input, output, options).QuantizedModules;
        var rng = new Random(3);
        var ids = TextSource.FromIds("random ids", Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 16).Select(_ => rng.Next(64)).ToArray()).ToList());
        return Oneshot.Run(new OneshotOptions { Model = input, Output = output, Recipe = Recipe.FromQuantizeOptions(options), Calibration = ids, Samples = 4, SeqLen = 16 },
            cancellation: TestContext.Current.CancellationToken).QuantizedModules;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QuantizeAndDecompress(string arch, string preset)
    {
        using var tmp = new TempDirectory();
        RandomModel.Write(tmp["in"], Spec(arch), seed: 7);
        using var original = Checkpoint.Open(tmp["in"]);
        Assert.Equal(7, QuantizeBySomeRoute(tmp["in"], tmp["out"], preset));

        var scheme = SchemePresets.Get(preset);
        var config = JsonNode.Parse(File.ReadAllText(tmp["out/config.json"]))!["quantization_config"]!;
        Assert.Equal("compressed-tensors", config["quant_method"]!.GetValue<string>());
        Assert.Equal("compressed", config["quantization_status"]!.GetValue<string>());
        Assert.Equal(scheme.ResolvedFormat, config["format"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(scheme.ToJson(), config["config_groups"]!["group_0"]));
        Assert.Equal(["lm_head"], config["ignore"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.True(File.Exists(tmp["out/recipe.yaml"]));
        Assert.Contains("QuantizationModifier", File.ReadAllText(tmp["out/recipe.yaml"]));

        using (var q = Checkpoint.Open(tmp["out"]))
        {
            ExpectTensors(q, scheme, "model.layers.0.self_attn.q_proj", 256, 256, original.Info("model.layers.0.self_attn.q_proj.weight").DType);
            ExpectTensors(q, scheme, "model.layers.0.mlp.down_proj", 256, 384, DType.BF16);
            foreach (var t in original.Tensors.Where(t => t.Shape.Length == 1 || t.Name.Contains("embed") || t.Name.StartsWith("lm_head")))
                Assert.True(q.Bytes(t.Name).SequenceEqual(original.Bytes(t.Name)), t.Name);
        }

        using (var compressed = CompressedCheckpoint.Open(tmp["out"]))
        {
            Assert.Equal(original.Tensors.Select(t => t.Name).Order(), compressed.Tensors.Select(t => t.Name).Order());
            foreach (var module in compressed.QuantizedModules)
            {
                var w = original.ReadFloat32(module + ".weight");
                var lin = compressed.ReadQuantized(module);
                var dq = new float[w.Length];
                compressed.ReadFloat32(module + ".weight", dq);
                int worst = -1;
                for (int i = 0; i < w.Length && worst < 0; i++)
                {
                    int slot = lin.QParams.Slot(i / lin.QParams.Cols, i % lin.QParams.Cols);
                    if (!(MathF.Abs(w[i] - dq[i]) <= Bound(w[i], lin.QParams.EffectiveScale(slot), lin.QParams.ZeroPointOf(slot), lin.Weights))) worst = i;
                }
                Assert.True(worst < 0, worst < 0 ? "" : $"{module}[{worst}]: {w[worst]} → {dq[worst]}");
            }
        }

        if (arch != "llama") return;   // the dense writer path is the same for every architecture
        Decompressor.Decompress(tmp["out"], tmp["dense"], DType.F32);
        using var dense = Checkpoint.Open(tmp["dense"]);
        using var again = CompressedCheckpoint.Open(tmp["out"]);
        Assert.Equal(original.Tensors.Select(t => t.Name).Order(), dense.Tensors.Select(t => t.Name).Order());
        var name = "model.layers.0.mlp.up_proj.weight";
        var expected = new float[dense.Info(name).ElementCount];
        again.ReadFloat32(name, expected);
        Assert.Equal(expected, dense.ReadFloat32(name));
        Assert.Null(ModelConfig.Load(tmp["dense"]).QuantizationConfig);
    }

    /// <summary>|w − ŵ| allowed by the format: half a grid step at the value (plus whatever the clamp cuts off).</summary>
    internal static float Bound(float x, float eff, float zp, QuantizationArgs args)
    {
        const float slack = 1e-5f;
        if (args.Type == QuantizationType.Int)
        {
            float lo = (args.QMin - zp) * eff, hi = (args.QMax - zp) * eff;
            return MathF.Max(0, MathF.Max(lo - x, x - hi)) + eff / 2 * (1 + slack) + 1e-7f;
        }
        float t = MathF.Abs(x / eff), excess = MathF.Max(0, t - args.QMax) * eff;
        float half = args.NumBits == 8 ? MathF.Max(MathF.Min(t, args.QMax) * 0.0625f, MathF.Pow(2, -10)) : t < 2 ? 0.25f : t < 4 ? 0.5f : 1f;
        return excess + half * eff * (1 + slack) + 1e-7f;
    }

    internal static void ExpectTensors(Checkpoint q, QuantizationScheme scheme, string m, long rows, long cols, DType modelDtype)
    {
        var w = scheme.Weights!;
        void Is(string name, DType dtype, params long[] shape)
        {
            var info = q.Info(m + "." + name);
            Assert.Equal(dtype, info.DType);
            Assert.Equal(shape, info.Shape);
        }
        var names = q.Tensors.Where(t => t.Name.StartsWith(m + ".", StringComparison.Ordinal)).Select(t => t.Name[(m.Length + 1)..]).Where(n => n != "bias").Order().ToList();
        switch (scheme.ResolvedFormat)
        {
            case CompressionFormat.PackQuantized:
                Is("weight_packed", DType.I32, rows, cols * w.NumBits / 32);
                Is("weight_scale", modelDtype, rows, cols / 128);
                Is("weight_shape", DType.I64, 2);
                Assert.Equal(new long[] { rows, cols }, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(q.Bytes(m + ".weight_shape")).ToArray());
                if (!w.Symmetric) Is("weight_zero_point", DType.I32, rows * w.NumBits / 32, cols / 128);
                Assert.Equal(w.Symmetric ? ["weight_packed", "weight_scale", "weight_shape"] : ["weight_packed", "weight_scale", "weight_shape", "weight_zero_point"], names);
                break;
            case CompressionFormat.IntQuantized:
                Is("weight", DType.I8, rows, cols);
                Is("weight_scale", modelDtype, rows, 1);
                Assert.Equal(["weight", "weight_scale"], names);
                break;
            case CompressionFormat.FloatQuantized:
                Is("weight", DType.F8_E4M3, rows, cols);
                var strategy = w.ResolvedStrategy;
                if (strategy == QuantizationStrategy.Tensor) { Is("weight_scale", modelDtype, 1); Is("input_scale", modelDtype, 1); }
                else if (strategy == QuantizationStrategy.Channel) Is("weight_scale", modelDtype, rows, 1);
                else Is("weight_scale", modelDtype, (rows + 127) / 128, (cols + 127) / 128);
                Assert.Equal(strategy == QuantizationStrategy.Tensor ? ["input_scale", "weight", "weight_scale"] : ["weight", "weight_scale"], names);
                break;
            case CompressionFormat.Nvfp4PackQuantized:
                Is("weight_packed", DType.U8, rows, cols / 2);
                Is("weight_scale", DType.F8_E4M3, rows, cols / 16);
                Is("weight_global_scale", DType.F32, 1);
                bool w4a4 = scheme.InputActivations is not null;
                if (w4a4) Is("input_global_scale", DType.F32, 1);
                Assert.Equal(w4a4 ? ["input_global_scale", "weight_global_scale", "weight_packed", "weight_scale"] : ["weight_global_scale", "weight_packed", "weight_scale"], names);
                break;
            case CompressionFormat.Mxfp4PackQuantized:
                Is("weight_packed", DType.U8, rows, cols / 2);
                Is("weight_scale", DType.U8, rows, cols / 32);
                Assert.Equal(["weight_packed", "weight_scale"], names);
                break;
            default:
                Assert.Fail(scheme.ResolvedFormat);
                break;
        }
    }
}
