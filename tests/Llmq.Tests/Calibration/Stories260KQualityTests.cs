using Llmq.Calibration;
using Llmq.Evaluation;
using Llmq.Tokenization;

namespace Llmq.Tests.Calibration;

/// <summary>Quality is measured, not assumed: on a real (tiny) Llama, GPTQ 4-bit must give lower perplexity than
/// round-to-nearest 4-bit with the same channel-wise grid, calibrated on TinyStories paragraphs held apart from the
/// evaluated ones. (The full-size figures, 128 × 512 calibration tokens and all 204 windows, are in issue 5's note.)</summary>
public class Stories260KQualityTests
{
    const string ChannelWise4Bit = """
        quant_stage:
          quant_modifiers:
            {0}:
              ignore: [lm_head]
              config_groups:
                group_0:
                  targets: [Linear]
                  weights: {{num_bits: 4, type: int, symmetric: true, strategy: channel}}
        """;

    [Fact]
    public void GptqBeatsRoundToNearestAtFourBits()
    {
        var model = SharedData.Path("models/stories260K-hf");
        var text = File.ReadAllText(SharedData.Path("data/tinystories/tinystories_val_moe-routing-bench.txt"));
        var paragraphs = TextSource.Paragraphs(text).ToList();
        var evaluated = TextSource.FromText("first 200 paragraphs", string.Join("\n\n", paragraphs.Take(200)));
        var calibration = TextSource.FromText("held-apart paragraphs", string.Join("\n\n", paragraphs.Skip(1200).Take(400)));
        using var dir = new TempDirectory();

        double Ppl(string path)
        {
            using var m = EvaluationModel.Open(path);
            var tokens = Perplexity.TokenStream(evaluated, ModelTokenizer.Load(model));
            return Perplexity.Evaluate(new DecoderLogitsModel(m.Model), tokens, new PerplexityOptions { SeqLen = 256, MaxWindows = 24 }).Perplexity;
        }

        double Quantized(string modifier)
        {
            var output = dir[modifier];
            Oneshot.Run(new OneshotOptions
            {
                Model = model, Output = output, Recipe = Recipe.Parse(string.Format(ChannelWise4Bit, modifier), modifier),
                Calibration = calibration, Samples = 32, SeqLen = 256,
            }, cancellation: TestContext.Current.CancellationToken);
            return Ppl(output);
        }

        double dense = Ppl(model), rtn = Quantized("QuantizationModifier"), gptq = Quantized("GPTQModifier");
        TestContext.Current.TestOutputHelper?.WriteLine($"ppl dense {dense:F4}, RTN {rtn:F4}, GPTQ {gptq:F4}");
        Assert.True(dense < gptq, $"dense {dense} should beat GPTQ {gptq}");
        Assert.True(gptq < rtn, $"GPTQ {gptq} should beat RTN {rtn} (dense {dense})");
    }
}
