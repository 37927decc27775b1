using Llmq.Checkpoints;

namespace Llmq.Formats.CompressedTensors;

public sealed record DecompressResult(string OutputPath, int DequantizedModules, long OutputBytes);

/// <summary>
/// Writes a dense checkpoint back from a compressed-tensors one: every quantized weight dequantized (<c>(q − zp) · scale</c>,
/// with the NVFP4 global scale and MX powers of two) and stored as BF16, F16 or F32; every other tensor copied as is;
/// quantization_config removed from config.json; tokenizer files copied. Streams one module at a time.
/// </summary>
public static class Decompressor
{
    public static DecompressResult Decompress(string inputDir, string outputDir, DType dtype = DType.BF16, bool overwrite = false,
        long maxShardBytes = SafetensorsWriter.DefaultMaxShardBytes, IProgress<(int Done, int Total)>? progress = null)
    {
        if (dtype is not (DType.BF16 or DType.F16 or DType.F32))
            throw new LlmqException($"decompress writes BF16, F16 or F32, not {dtype}");
        using var source = CompressedCheckpoint.Open(inputDir);
        using var output = OutputDirectory.Create(outputDir, overwrite);
        long bytes;
        using (var writer = new SafetensorsWriter(output.Path, maxShardBytes))
        {
            float[] buffer = [];
            int done = 0;
            foreach (var t in source.Tensors)
            {
                string module = t.Name.EndsWith(".weight", StringComparison.Ordinal) ? t.Name[..^".weight".Length] : "";
                if (source.IsQuantized(module))
                {
                    if (buffer.Length < t.ElementCount) buffer = GC.AllocateUninitializedArray<float>((int)t.ElementCount);
                    var span = buffer.AsSpan(0, (int)t.ElementCount);
                    source.ReadFloat32(t.Name, span);
                    writer.AddFloat32(t.Name, t.Shape, span, dtype);
                }
                else
                {
                    writer.Add(t.Name, t.DType, t.Shape, source.Checkpoint.Bytes(t.Name));
                }
                progress?.Report((++done, source.Tensors.Count));
            }
            writer.Finish();
            bytes = writer.TotalBytes;
        }
        var config = (System.Text.Json.Nodes.JsonObject)source.Config.Json.DeepClone();
        config.Remove("quantization_config");
        File.WriteAllText(Path.Combine(output.Path, ModelConfig.FileName), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        ModelFiles.CopyAuxiliary(inputDir, output.Path);
        output.Publish();
        return new DecompressResult(output.FinalPath, source.QuantizedModules.Count, bytes);
    }
}
