using Llmq.Checkpoints;
using System.Text.Json.Nodes;
using Llmq.Models;

namespace Llmq.Tests.Models;

public class DecoderModelTests
{
    /// <summary>Max |fast − reference| over all logits, relative to the largest reference logit.</summary>
    static double RelativeError(float[] fast, double[] reference)
    {
        Assert.Equal(reference.Length, fast.Length);
        double worst = 0, scale = reference.Max(Math.Abs);
        for (int i = 0; i < fast.Length; i++) worst = Math.Max(worst, Math.Abs(fast[i] - reference[i]));
        return worst / scale;
    }

    static void MatchesReference(TinySpec spec, int batch = 2, int seqLen = 9, int seed = 1)
    {
        var weights = TinyModels.Weights(spec, seed);
        using var model = new DecoderModel(weights, TinyModels.Config(spec));
        var tokens = TinyModels.Tokens(batch * seqLen, spec.Vocab, seed + 100);
        var fast = model.Forward(tokens, batch, seqLen);
        var reference = ReferenceDecoder.Forward(weights, spec, tokens, batch, seqLen);
        Assert.True(RelativeError(fast, reference) < 1e-5, $"relative error {RelativeError(fast, reference):G3}");
    }

    [Fact]
    public void LlamaMatchesTheScalarReference() => MatchesReference(new TinySpec("LlamaForCausalLM"));

    [Fact]
    public void LlamaWithAttentionBiasAndTiedEmbeddingsMatches() =>
        MatchesReference(new TinySpec("LlamaForCausalLM", OBias: true, Tied: true));

    [Fact]
    public void Qwen2QkvBiasMatchesTheScalarReference() =>
        MatchesReference(new TinySpec("Qwen2ForCausalLM", Heads: 6, KvHeads: 2, HeadDim: 6, Hidden: 24, QkvBias: true));

    [Fact]
    public void Qwen3QkNormMatchesTheScalarReference() =>
        MatchesReference(new TinySpec("Qwen3ForCausalLM", HeadDim: 16, QkNorm: true));

    [Fact]
    public void MistralSlidingWindowMatchesTheScalarReference() =>
        MatchesReference(new TinySpec("MistralForCausalLM", SlidingWindow: 5), batch: 1, seqLen: 80);

    [Fact]
    public void LongerThanOneQueryBlockMatches() =>
        MatchesReference(new TinySpec("LlamaForCausalLM", Layers: 1, Heads: 2, KvHeads: 1, HeadDim: 16), batch: 2, seqLen: 131);

    [Fact]
    public void Qwen2WithoutItsBiasTensorsIsRefusedNamingTheTensor()
    {
        var spec = new TinySpec("Qwen2ForCausalLM");
        using var model = new DecoderModel(TinyModels.Weights(spec, 1), TinyModels.Config(spec), "tiny");
        var error = Assert.Throws<InvalidCheckpointException>(() => model.LoadLayer(0));
        Assert.Equal("model.layers.0.self_attn.q_proj.bias", error.Tensor);
    }

    [Fact]
    public void GroupedQueryAttentionEqualsFullAttentionWithRepeatedKvHeads()
    {
        var gqa = new TinySpec("LlamaForCausalLM", Heads: 4, KvHeads: 2);
        var full = gqa with { KvHeads = 4 };
        var weights = TinyModels.Weights(gqa, 3);
        var repeated = TinyModels.Weights(full, 3);
        foreach (var (name, value) in weights.Tensors) repeated.Tensors[name] = value;
        int hd = gqa.HeadDim, h = gqa.Hidden;
        for (int l = 0; l < gqa.Layers; l++)
            foreach (var proj in new[] { "k_proj", "v_proj" })
            {
                var name = $"model.layers.{l}.self_attn.{proj}.weight";
                var kv = weights[name];
                var data = new float[4 * hd * h];
                for (int head = 0; head < 4; head++) Array.Copy(kv, head / 2 * hd * h, data, head * hd * h, hd * h);
                repeated.Add(name, data, 4 * hd, h);
            }
        var tokens = TinyModels.Tokens(12, gqa.Vocab, 4);
        using var a = new DecoderModel(weights, TinyModels.Config(gqa));
        using var b = new DecoderModel(repeated, TinyModels.Config(full));
        var la = a.Forward(tokens);
        var lb = b.Forward(tokens);
        for (int i = 0; i < la.Length; i++) Assert.Equal(la[i], lb[i], 1e-4f);
    }

    [Fact]
    public void ObserverSeesEveryLinearInputByItsHuggingFaceName()
    {
        var spec = new TinySpec("LlamaForCausalLM", Intermediate: 40);
        var weights = TinyModels.Weights(spec, 5);
        using var model = new DecoderModel(weights, TinyModels.Config(spec));
        var tokens = TinyModels.Tokens(2 * 7, spec.Vocab, 6);
        var hidden = model.Embed(tokens);
        var observer = new Recorder();
        model.ForwardLayer(model.LoadLayer(1), hidden.ToArray(), 2, 7, observer);

        string p = "model.layers.1.";
        Assert.Equal(
        [
            (p + "self_attn.q_proj", 14, 32), (p + "self_attn.k_proj", 14, 32), (p + "self_attn.v_proj", 14, 32),
            (p + "self_attn.o_proj", 14, 32), (p + "mlp.gate_proj", 14, 32), (p + "mlp.up_proj", 14, 32),
            (p + "mlp.down_proj", 14, 40),
        ], observer.Calls.Select(c => (c.Name, c.Rows, c.Cols)));
        // q/k/v read the input-normed states: check the first row by hand.
        var norm = weights[p + "input_layernorm.weight"];
        double rms = Math.Sqrt(hidden.Take(32).Sum(x => (double)x * x) / 32 + spec.Eps);
        for (int c = 0; c < 32; c++) Assert.Equal(hidden[c] / rms * norm[c], observer.Calls[0].Input[c], 1e-5);
        Assert.Equal(observer.Calls[0].Input, observer.Calls[2].Input);
        Assert.Equal(observer.Calls[4].Input, observer.Calls[5].Input);
    }

    [Fact]
    public void LargeBatchesRunInChunksWithTheSameResultAndObserversSeeEachLinearOnce()
    {
        var spec = new TinySpec("LlamaForCausalLM", Hidden: 16, Heads: 2, KvHeads: 1, Intermediate: 24);
        using var model = new DecoderModel(TinyModels.Weights(spec, 9), TinyModels.Config(spec));
        int seqLen = 100, batch = DecoderModel.ChunkTokens / seqLen + 1; // one more sample than a chunk holds
        var hidden = model.Embed(TinyModels.Tokens(batch * seqLen, spec.Vocab, 10));
        var observed = hidden.ToArray();
        var oneByOne = hidden.ToArray();
        var layer = model.LoadLayer(0);
        var observer = new Recorder();

        model.ForwardLayer(layer, hidden, batch, seqLen);
        model.ForwardLayer(layer, observed, batch, seqLen, observer);
        for (int s = 0; s < batch; s++) model.ForwardLayer(layer, oneByOne.AsSpan(s * seqLen * 16, seqLen * 16), 1, seqLen);

        for (int i = 0; i < hidden.Length; i++) Assert.Equal(oneByOne[i], hidden[i], 1e-5f);
        for (int i = 0; i < hidden.Length; i++) Assert.Equal(oneByOne[i], observed[i], 1e-5f);
        Assert.Equal(layer.LinearNames, observer.Calls.Select(c => c.Name));
        Assert.All(observer.Calls, c => Assert.Equal(batch * seqLen, c.Rows));
    }

    [Fact]
    public void ObservingLinearInputsSeesWhatTheFullForwardSees()
    {
        var spec = new TinySpec("Qwen2ForCausalLM", QkvBias: true);
        using var model = new DecoderModel(TinyModels.Weights(spec, 11), TinyModels.Config(spec));
        var layer = model.LoadLayer(1);
        var hidden = model.Embed(TinyModels.Tokens(3 * 9, spec.Vocab, 12));
        var full = new Recorder();
        var inputsOnly = new Recorder();
        model.ForwardLayer(layer, hidden.ToArray(), 3, 9, full);
        model.ObserveLinearInputs(layer, hidden.ToArray(), 3, 9, inputsOnly);

        Assert.Equal(full.Calls.Select(c => (c.Name, c.Rows, c.Cols)), inputsOnly.Calls.Select(c => (c.Name, c.Rows, c.Cols)));
        for (int i = 0; i < full.Calls.Count; i++) Assert.Equal(full.Calls[i].Input, inputsOnly.Calls[i].Input);
        Assert.Throws<ArgumentNullException>(() => model.ObserveLinearInputs(layer, hidden, 3, 9, null!));
    }

    [Fact]
    public void ReplacedLinearWeightsAreWhatTheLayerUses()
    {
        var spec = new TinySpec("LlamaForCausalLM");
        using var model = new DecoderModel(TinyModels.Weights(spec, 7), TinyModels.Config(spec));
        var layer = model.LoadLayer(0);
        Assert.Equal((32, 32), layer.WeightShape("model.layers.0.self_attn.o_proj"));
        Assert.Equal((16, 32), layer.WeightShape("self_attn.k_proj"));
        layer.SetWeight("model.layers.0.self_attn.o_proj", new float[32 * 32]);
        layer.Weight("mlp.down_proj").Clear();
        var hidden = model.Embed(TinyModels.Tokens(10, spec.Vocab, 8));
        var before = hidden.ToArray();
        model.ForwardLayer(layer, hidden, 1, 10);
        Assert.Equal(before, hidden); // both residual branches now add exactly zero
        Assert.Throws<ArgumentException>(() => layer.Weight("mlp.fc1"));
    }

    [Fact]
    public void ReusedLayerBuffersHoldTheNewLayer()
    {
        var spec = new TinySpec("Qwen2ForCausalLM", QkvBias: true);
        using var model = new DecoderModel(TinyModels.Weights(spec, 2), TinyModels.Config(spec));
        var first = model.LoadLayer(0);
        var reused = model.LoadLayer(1, first);
        var fresh = model.LoadLayer(1);
        Assert.Same(first, reused);
        Assert.Equal(1, reused.Index);
        Assert.Equal("model.layers.1.self_attn.q_proj", reused.LinearNames[0]);
        foreach (var name in fresh.LinearNames) Assert.Equal(fresh.Weight(name).ToArray(), reused.Weight(name).ToArray());
        Assert.Equal(fresh.QkvBias, reused.QkvBias);
        using var other = new DecoderModel(TinyModels.Weights(spec, 2), TinyModels.Config(spec));
        Assert.Throws<ArgumentException>(() => other.LoadLayer(0, fresh));
    }

    [Fact]
    public void UnsupportedArchitectureListsTheSupportedOnes()
    {
        var json = new TinySpec("GPT2LMHeadModel").Json();
        var error = Assert.Throws<LlmqException>(() => new DecoderModel(new InMemoryTensors(), ModelConfig.Parse(json)));
        Assert.Contains("GPT2LMHeadModel", error.Message);
        foreach (var name in new[] { "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM" })
            Assert.Contains(name, error.Message);
    }

    [Fact]
    public void TokenOutsideTheVocabularyIsRefused()
    {
        var spec = new TinySpec("LlamaForCausalLM");
        using var model = new DecoderModel(TinyModels.Weights(spec, 1), TinyModels.Config(spec));
        Assert.Throws<LlmqException>(() => model.Embed([1, spec.Vocab]));
    }

    [Fact]
    public void ShapeMismatchNamesTheTensor()
    {
        var spec = new TinySpec("LlamaForCausalLM");
        var weights = TinyModels.Weights(spec, 1);
        weights.Add("model.layers.0.mlp.up_proj.weight", new float[10], 10);
        using var model = new DecoderModel(weights, TinyModels.Config(spec), "tiny");
        var error = Assert.Throws<InvalidCheckpointException>(() => model.LoadLayer(0));
        Assert.Equal("model.layers.0.mlp.up_proj.weight", error.Tensor);
        Assert.Contains("[10]", error.Message);
    }

    sealed class Recorder : ILinearInputObserver
    {
        public List<(string Name, float[] Input, int Rows, int Cols)> Calls { get; } = [];

        public void Observe(string linearName, ReadOnlySpan<float> input, int rows, int cols)
        {
            Assert.Equal(rows * cols, input.Length);
            Calls.Add((linearName, input.ToArray(), rows, cols));
        }
    }
}
