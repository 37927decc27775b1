using Llmq.Checkpoints;
using Llmq.Models;

namespace Llmq.Tests.Models;

/// <summary>bf16 models written by <see cref="RandomModel"/>, opened from disk as a user would, against the scalar reference.</summary>
public class RandomModelForwardTests
{
    public static TheoryData<string> Specs => ["TinyLlama", "TinyMistral", "TinyQwen2", "TinyQwen3"];

    [Theory]
    [MemberData(nameof(Specs))]
    public void OpenedFromDiskMatchesTheScalarReference(string preset)
    {
        var spec = preset switch
        {
            "TinyLlama" => RandomModelSpec.TinyLlama,
            "TinyMistral" => RandomModelSpec.TinyMistral,
            "TinyQwen2" => RandomModelSpec.TinyQwen2,
            _ => RandomModelSpec.TinyQwen3,
        };
        using var dir = new TempDirectory();
        RandomModel.Write(dir.Path, spec, seed: 11);
        var weights = new InMemoryTensors();
        using (var checkpoint = Checkpoint.Open(dir.Path))
            foreach (var info in checkpoint.Tensors) weights.Add(info.Name, checkpoint.ReadFloat32(info.Name), info.Shape);
        var tiny = new TinySpec(spec.Architecture, spec.HiddenSize, spec.NumLayers, spec.NumHeads, spec.NumKvHeads, spec.ResolvedHeadDim,
            spec.IntermediateSize, spec.VocabSize, spec.RopeTheta, spec.RmsNormEps, spec.TieWordEmbeddings);
        var tokens = TinyModels.Tokens(2 * 11, spec.VocabSize, 12);

        float[] logits;
        using (var model = DecoderModel.Open(dir.Path)) logits = model.Forward(tokens, 2, 11);

        var reference = ReferenceDecoder.Forward(weights, tiny, tokens, 2, 11);
        double worst = 0, scale = reference.Max(Math.Abs);
        for (int i = 0; i < logits.Length; i++) worst = Math.Max(worst, Math.Abs(logits[i] - reference[i]));
        Assert.True(worst / scale < 1e-5, $"relative error {worst / scale:G3}");
    }

    [Fact]
    public void EmbeddingRowsReadFromTheCheckpointEqualTheFloat32Table()
    {
        var spec = RandomModelSpec.TinyLlama with { TieWordEmbeddings = true };
        using var dir = new TempDirectory();
        RandomModel.Write(dir.Path, spec, seed: 5);
        var tokens = TinyModels.Tokens(40, spec.VocabSize, 6);
        using var model = DecoderModel.Open(dir.Path);
        var fromRows = model.Embed(tokens);          // the table is not loaded yet: rows come from the checkpoint
        model.Forward(tokens.AsSpan(0, 8), 1, 8);     // the tied lm_head loads the whole table
        Assert.Equal(model.Embed(tokens), fromRows);
        using var checkpoint = Checkpoint.Open(dir.Path);
        var table = checkpoint.ReadFloat32("model.embed_tokens.weight");
        Assert.Equal(table.AsSpan(tokens[3] * spec.HiddenSize, spec.HiddenSize).ToArray(), fromRows.AsSpan(3 * spec.HiddenSize, spec.HiddenSize).ToArray());
    }
}
