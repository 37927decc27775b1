using Llmq.Checkpoints;

namespace Llmq.Formats.Gguf;

/// <summary>A llama GGUF back to a Hugging Face directory: dequantized safetensors under HF names (q/k permutation
/// undone), config.json from the llama.* metadata, and the tokenizer files found beside the .gguf, if any.</summary>
public static class GgufDecompressor
{
    public static string Decompress(string ggufPath, string outputDir, DType dtype, bool overwrite, IProgress<(int Done, int Total)>? progress = null)
    {
        using var source = GgufTensorSource.Open(ggufPath);
        using var output = OutputDirectory.Create(outputDir, overwrite);
        var names = source.TensorNames.ToList();
        using (var writer = new SafetensorsWriter(output.Path))
        {
            for (int i = 0; i < names.Count; i++)
            {
                var shape = source.Shape(names[i]);
                var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
                source.ReadFloat32(names[i], values);
                writer.AddFloat32(names[i], shape, values, names[i].EndsWith("norm.weight", StringComparison.Ordinal) ? DType.F32 : dtype);
                progress?.Report((i + 1, names.Count));
            }
            writer.Finish(new Dictionary<string, string> { ["format"] = "pt" });
        }
        var config = source.Config.Json.DeepClone().AsObject();
        config["torch_dtype"] = dtype switch { DType.BF16 => "bfloat16", DType.F16 => "float16", _ => "float32" };
        File.WriteAllText(Path.Combine(output.Path, ModelConfig.FileName), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        var beside = Path.GetDirectoryName(Path.GetFullPath(ggufPath))!;
        ModelFiles.CopyAuxiliary(beside, output.Path);
        output.Publish();
        return output.FinalPath;
    }
}
