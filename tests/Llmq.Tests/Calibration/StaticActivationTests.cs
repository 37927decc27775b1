using System.Text.Json.Nodes;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Models;
using Llmq.Quantization;

namespace Llmq.Tests.Calibration;

/// <summary>Stored input scales (FP8 <c>input_scale</c>, NVFP4 <c>input_global_scale</c>, static int8 inputs) from the
/// calibration pass of the sequential pipeline, checked against ranges taken here by running the layers ourselves.</summary>
public class StaticActivationTests
{
    static readonly RandomModelSpec Spec = RandomModelSpec.Llama(hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 96);
    const int Samples = 8, SeqLen = 32;

    static TextSource RandomTokens()
    {
        var rng = new Random(5);
        return TextSource.FromIds("random tokens", Enumerable.Range(0, Samples).Select(_ => Enumerable.Range(0, SeqLen).Select(_ => rng.Next(96)).ToArray()).ToList());
    }

    static OneshotResult Run(string model, string output, Recipe recipe) =>
        Oneshot.Run(new OneshotOptions { Model = model, Output = output, Recipe = recipe, Calibration = RandomTokens(), Samples = Samples, SeqLen = SeqLen },
            cancellation: TestContext.Current.CancellationToken);

    /// <summary>Min and max of each Linear's input over all calibration tokens, running the dense layers
    /// <paramref name="layers"/> deep (RTN leaves the weights the next layer sees untouched).</summary>
    static Dictionary<string, (float Min, float Max)> DenseInputRanges(string modelDir, int layers)
    {
        var samples = CalibrationSet.Build(RandomTokens(), null, new CalibrationOptions { Samples = Samples, SeqLen = SeqLen });
        Assert.Equal(Samples, samples.Length);
        using var model = DecoderModel.Open(modelDir);
        int h = model.HiddenSize;
        var hidden = new float[Samples * SeqLen * h];
        for (int s = 0; s < Samples; s++) model.Embed(samples[s]).CopyTo(hidden, s * SeqLen * h);
        var observer = new RangeObserver();
        for (int l = 0; l < layers; l++) model.ForwardLayer(model.LoadLayer(l), hidden, Samples, SeqLen, observer);
        return observer.Ranges;
    }

    sealed class RangeObserver : ILinearInputObserver
    {
        public Dictionary<string, (float Min, float Max)> Ranges { get; } = new();

        public void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols)
        {
            var (min, max) = Ranges.GetValueOrDefault(linearName, (float.PositiveInfinity, float.NegativeInfinity));
            foreach (var x in input)
            {
                min = Math.Min(min, x);
                max = Math.Max(max, x);
            }
            Ranges[linearName] = (min, max);
        }
    }

    [Theory]
    [InlineData("FP8", DType.F32)]
    [InlineData("FP8", DType.BF16)]
    [InlineData("NVFP4", DType.F32)]
    [InlineData("NVFP4", DType.BF16)]
    public void InputScalesComeFromTheRunningMaxOfEachLinearsInput(string preset, DType dtype)
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec with { DType = dtype }, seed: 7);
        var result = Run(dir["model"], dir["out"], Recipe.FromScheme(preset, QuantizationMethod.Rtn));
        Assert.Equal(14, result.QuantizedModules);
        Assert.Equal(Samples, result.Samples);
        Assert.True(result.Timings.Forward > 0);

        var ranges = DenseInputRanges(dir["model"], Spec.NumLayers);
        Assert.Equal(14, ranges.Count);
        var precision = LinearCompressors.Precision(dtype);
        var name = preset == "FP8" ? "input_scale" : "input_global_scale";
        using var q = Checkpoint.Open(dir["out"]);
        float Stored(string module)
        {
            var info = q.Info(module + "." + name);
            Assert.Equal(preset == "FP8" ? dtype : DType.F32, info.DType);
            Assert.Equal([1L], info.Shape);
            return q.ReadFloat32(info.Name)[0];
        }
        foreach (var (module, (min, max)) in ranges)
        {
            // the observed activations are model-dtype values in the reference; FP8's scale is computed in the model dtype
            float amax = precision.Round(Math.Max(Math.Abs(min), Math.Abs(max)));
            float expected = preset == "FP8" ? precision.Round(amax / 448f) : 2688f / amax;
            Assert.True(expected == Stored(module), $"{module}: {Stored(module)}, expected {expected} from amax {amax}");
        }
        // q/k/v and gate/up multiply one input each: one value per fused set, as vLLM's max over shards expects
        foreach (var layer in new[] { "model.layers.0", "model.layers.1" })
        {
            Assert.Equal(Stored(layer + ".self_attn.q_proj"), Stored(layer + ".self_attn.k_proj"));
            Assert.Equal(Stored(layer + ".self_attn.q_proj"), Stored(layer + ".self_attn.v_proj"));
            Assert.Equal(Stored(layer + ".mlp.gate_proj"), Stored(layer + ".mlp.up_proj"));
            Assert.NotEqual(Stored(layer + ".self_attn.q_proj"), Stored(layer + ".self_attn.o_proj"));
        }
    }

    [Fact]
    public void RtnWeightsAreThoseOfTheDatafreeQuantizer()
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec, seed: 7);
        Run(dir["model"], dir["w4a4"], Recipe.FromScheme("NVFP4", QuantizationMethod.Rtn));
        Quantizer.QuantizeModel(dir["model"], dir["w4a16"], new QuantizeOptions { Scheme = "NVFP4A16" }, cancellation: TestContext.Current.CancellationToken);
        using var a = Checkpoint.Open(dir["w4a4"]);
        using var b = Checkpoint.Open(dir["w4a16"]);
        Assert.Equal(b.Tensors.Select(t => t.Name).Order(), a.Tensors.Select(t => t.Name).Where(n => !n.EndsWith(".input_global_scale")).Order());
        foreach (var t in b.Tensors)
            Assert.True(a.Bytes(t.Name).SequenceEqual(b.Bytes(t.Name)), t.Name);   // fused global scales shared, weights untouched by calibration
        Assert.Equal(a.ReadFloat32("model.layers.1.self_attn.q_proj.weight_global_scale"), a.ReadFloat32("model.layers.1.self_attn.v_proj.weight_global_scale"));
    }

    [Fact]
    public void GptqRecipeWithStaticAsymmetricInt8Inputs()
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec with { DType = DType.F32 }, seed: 7);
        var recipe = Recipe.Parse("""
            quant_stage:
              quant_modifiers:
                GPTQModifier:
                  ignore: [lm_head]
                  config_groups:
                    group_0:
                      targets: [Linear]
                      weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}
                      input_activations: {num_bits: 8, type: int, symmetric: false, strategy: tensor, dynamic: false, observer: static_minmax}
            """, "recipe");
        var result = Run(dir["model"], dir["out"], recipe);
        Assert.Equal(14, result.QuantizedModules);
        Assert.True(result.TotalLoss > 0);

        var group = JsonNode.Parse(File.ReadAllText(dir["out/config.json"]))!["quantization_config"]!["config_groups"]!["group_0"]!;
        Assert.Equal("int-quantized", (string)group["format"]!);
        Assert.Equal("static_minmax", (string)group["input_activations"]!["observer"]!);
        using var q = Checkpoint.Open(dir["out"]);
        // layer 0 sees the embeddings whatever GPTQ does; its inputs are the dense model's
        foreach (var (module, (min, max)) in DenseInputRanges(dir["model"], 1))
        {
            float lo = Math.Min(min, 0), hi = Math.Max(max, 0), scale = (hi - lo) / 255f;
            Assert.Equal(DType.F32, q.Info(module + ".input_scale").DType);
            Assert.Equal(scale, q.ReadFloat32(module + ".input_scale")[0]);
            Assert.Equal(DType.I8, q.Info(module + ".input_zero_point").DType);
            Assert.Equal((sbyte)Math.Clamp(MathF.Round(-128 - lo / scale, MidpointRounding.ToEven), -128, 127), (sbyte)q.Bytes(module + ".input_zero_point")[0]);
        }
        Assert.True(q.Contains("model.layers.1.mlp.down_proj.input_scale"));
    }

    [Fact]
    public void StaticInputsWithAPerTokenStrategyAreRefusedBeforeAnyWork()
    {
        using var dir = new TempDirectory();
        RandomModel.Write(dir["model"], Spec, seed: 7);
        var recipe = Recipe.FromScheme("W8A8", QuantizationMethod.Rtn);
        var input = recipe.Groups[0].InputActivations! with { Strategy = QuantizationStrategy.Channel, Dynamic = DynamicMode.Static };
        recipe = recipe with { Groups = [recipe.Groups[0] with { InputActivations = input }] };
        var e = Assert.Throws<LlmqException>(() => Run(dir["model"], dir["out"], recipe));
        Assert.Contains("static input quantization needs strategy tensor", e.Message);
        Assert.False(Directory.Exists(dir["out"]));
    }
}
