using System.Security.Cryptography;
using Llmq.Checkpoints;
using Llmq.Quantization;

namespace Llmq.Tests.Formats.CompressedTensors;

/// <summary>
/// The tensors written for a small random model, pinned by SHA-256: any change to an observer, kernel or packer that moves
/// one output byte fails here. The hashes were taken from the scalar-per-slot implementation before the vectorized fast
/// paths; a deliberate format change has to update them (and say why in its commit).
/// </summary>
public class OutputHashTests
{
    [Theory]
    [InlineData("W4A16", "BF16", null, "70befd87ae752b725cdedbd945b4336edbfad9598414344d22b4610548adbed8")]
    [InlineData("W4A16_ASYM", "BF16", null, "eb9b47633f4acfc0c13e1668d582ba3942419bb76c4b518b97a6c3b52ef35229")]
    [InlineData("W8A16", "F32", null, "1c6e94f7f87c73913e6e514de7261271db8080a778a8f07964f9bf3fcdff9d06")]
    [InlineData("W8A8", "BF16", null, "4051ab032522b20ba9b98051fdd407f10c128143c4d36d52632c6df08ab477d4")]
    [InlineData("FP8_DYNAMIC", "BF16", null, "54762b045b7e6a1ea70cfb19a0511564aa1f66622cc8dc8bab58f14bea189280")]
    [InlineData("FP8_BLOCK", "F32", null, "5a873aacc33d02bc3f29116d01d7a2e05a6da92fbbbb36aa0a9964962a1ff37a")]
    [InlineData("NVFP4A16", "BF16", null, "5dc2f0b6c9b9f55112d8df56c375220865b589ba6468b973e1541fbe890425be")]
    [InlineData("NVFP4A16", "F32", null, "73af99d399d9c5c21137f2dc9b5d6d7b362be52e501d49444a8b42cef47519bc")]
    [InlineData("MXFP4", "BF16", null, "703299dcdd9f9085440a0881658ca822281f5f3de694e77fb4b8b20f5019a469")]
    [InlineData("MXFP4", "F32", null, "688c5de268edc38d9fba93147bc563e5411686f1e9fa070a0e363e0e6e4f4085")]
    [InlineData("W4A16", "F32", "mse", "135dfe7e9d82f05c4ad7f95c3f86da0381a2bf75aaefdd66a4614cd9d7c9937f")]
    public void TensorBytesAreUnchanged(string preset, string dtype, string? observer, string expected)
    {
        using var tmp = new TempDirectory();
        // Rows and columns of 128, 256 and 384: several vectors per row, every group size divides the columns.
        var spec = RandomModelSpec.Llama(256, 2, 4, 2, 384, 64) with { DType = Enum.Parse<DType>(dtype) };
        RandomModel.Write(tmp["model"], spec, seed: 11);
        Reweight(tmp["model"], tmp["in"], seed: 11);
        RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = preset, WeightObserver = observer });
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.GetFiles(tmp["out"], "*.safetensors").Order(StringComparer.Ordinal))
            sha.AppendData(File.ReadAllBytes(file));
        string hash = Convert.ToHexStringLower(sha.GetHashAndReset());
        Assert.True(hash == expected, $"{preset} {dtype} {observer}: tensors hash to {hash}");
    }

    /// <summary>The model's tensors with new values from <see cref="Random"/>'s integer generator: RandomModel's normal
    /// samples go through vectorized Log / SinCos, whose last bits depend on the hardware, and the hashes must not.</summary>
    static void Reweight(string source, string destination, int seed)
    {
        var rng = new Random(seed);
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(source, ModelConfig.FileName), Path.Combine(destination, ModelConfig.FileName));
        using var checkpoint = Checkpoint.Open(source);
        using var writer = new SafetensorsWriter(destination);
        foreach (var t in checkpoint.Tensors)
        {
            var values = new float[t.ElementCount];
            for (int i = 0; i < values.Length; i++)
                values[i] = (float)(rng.NextDouble() - 0.5) * (rng.Next(64) == 0 ? 0.5f : 0.05f);   // a few outliers per group
            writer.AddFloat32(t.Name, t.Shape, values, t.DType);
        }
        writer.Finish();
    }
}
