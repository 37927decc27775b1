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
    [InlineData("W4A16", "BF16", null, "12e871530410429247d57aa9f9c4c7d34552f6a746e1f279e03d1ae088b87afa")]
    [InlineData("W4A16_ASYM", "BF16", null, "2da0e21ae3ae8b5b8c011952fe9739c94e61d7565d81456290608f115bbff08a")]
    [InlineData("W8A16", "F32", null, "5a08eb1f805cf44f49dc0a81a34d63f19b0c965118f05893e09da3a3d34bc205")]
    [InlineData("W8A8", "BF16", null, "f50f8429dd67a7e68a7b89024c0a99cd2a425648bcc71486c1f8544190634d2b")]
    [InlineData("FP8_DYNAMIC", "BF16", null, "764737f4e065708a6cc44a81bb16a4d9dac563735fe72f78e6c3265774663200")]
    [InlineData("FP8_BLOCK", "F32", null, "8412b6f3987fa8d05c7b9f87582dcb6328c2cdc5399c6345763667c7a7cb6473")]
    [InlineData("NVFP4A16", "BF16", null, "3889df6cc746af74935fd40b6592bf995612cc1be9310e88ce0b917785a398a2")]
    [InlineData("NVFP4A16", "F32", null, "795522b8b0ce8b989471fad60aba225d33e3a7575cf013290819a94912c314ac")]
    [InlineData("MXFP4", "BF16", null, "57c6dfc653927a26ac56d753a4b8a05b6e827d59e7251804dd8aea777828c8d7")]
    [InlineData("MXFP4", "F32", null, "8fab2cf0429e18128d9ccfabbcd28dcd09eb04ec9b58358e37899b31646bd6d9")]
    [InlineData("W4A16", "F32", "mse", "932c21ae3016199a7ef9dafa8678724fc2c3a72c4e7483422b172b13a10f50a4")]
    public void TensorBytesAreUnchanged(string preset, string dtype, string? observer, string expected)
    {
        using var tmp = new TempDirectory();
        // Rows and columns of 128, 256 and 384: several vectors per row, every group size divides the columns.
        var spec = RandomModelSpec.Llama(256, 2, 4, 2, 384, 64) with { DType = Enum.Parse<DType>(dtype) };
        RandomModel.Write(tmp["in"], spec, seed: 11);
        RoundTripTests.Quantize(tmp["in"], tmp["out"], new QuantizeOptions { Scheme = preset, WeightObserver = observer });
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in Directory.GetFiles(tmp["out"], "*.safetensors").Order(StringComparer.Ordinal))
            sha.AppendData(File.ReadAllBytes(file));
        string hash = Convert.ToHexStringLower(sha.GetHashAndReset());
        Assert.True(hash == expected, $"{preset} {dtype} {observer}: tensors hash to {hash}");
    }
}
