using Llmq.Checkpoints;
using Llmq.Formats.CompressedTensors;
using Llmq.Formats.Gptq;
using Llmq.Formats.Gguf;
using Llmq.Models;

namespace Llmq.Evaluation;

/// <summary>A quantized on-disk format that evaluation can read back as float32 weights.</summary>
/// <param name="Name">Shown in errors and reports, e.g. "compressed-tensors".</param>
/// <param name="Recognizes">True when the path (a model directory or file) with its config (null when there is no
/// config.json) is in this format.</param>
/// <param name="Open">Opens the path as dequantized float32 tensors under their dense Hugging Face names
/// (".weight", never ".weight_packed"/".qweight"), plus its config.</param>
public sealed record DequantizingFormat(string Name, Func<string, ModelConfig?, bool> Recognizes,
                                        Func<string, (ITensorSource Weights, ModelConfig Config, IDisposable Owner)> Open);

/// <summary>Opens any checkpoint Llmq reads as a <see cref="DecoderModel"/> for evaluation: dense safetensors directly,
/// quantized formats through the dequantizing reader registered for them in <see cref="Formats"/>.</summary>
public sealed class EvaluationModel : IDisposable
{
    /// <summary>THE place where each quantized format's reader is registered (one line per format). A quantized
    /// checkpoint that none of them recognizes is refused with the list, rather than read as if it were dense.</summary>
    public static IReadOnlyList<DequantizingFormat> Formats { get; } =
    [
        new("compressed-tensors", (_, config) => (string?)config?.QuantizationConfig?["quant_method"] == "compressed-tensors",
            path =>
            {
                var checkpoint = CompressedCheckpoint.Open(path);
                return (checkpoint, checkpoint.Config, checkpoint);
            }),
        new("gptq", (_, config) => (string?)config?.QuantizationConfig?["quant_method"] == "gptq",
            path =>
            {
                var checkpoint = GptqCheckpoint.Open(path);
                return (checkpoint, ModelConfig.Load(path), checkpoint);
            }),
        new("gguf", (path, _) => File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase),
            path =>
            {
                var gguf = GgufTensorSource.Open(path);
                return (gguf, gguf.Config, gguf);
            }),
    ];

    readonly IDisposable? _owner;
    public DecoderModel Model { get; }
    /// <summary>"dense" or the name of the format that dequantized it.</summary>
    public string Format { get; }

    EvaluationModel(DecoderModel model, string format, IDisposable? owner)
    {
        Model = model;
        Format = format;
        _owner = owner;
    }

    public static EvaluationModel Open(string path)
    {
        var config = File.Exists(Path.Combine(path, ModelConfig.FileName)) ? ModelConfig.Load(path) : null;
        foreach (var format in Formats)
        {
            if (!format.Recognizes(path, config))
                continue;
            var (weights, formatConfig, owner) = format.Open(path);
            try
            {
                return new EvaluationModel(new DecoderModel(weights, formatConfig, path), format.Name, owner);
            }
            catch
            {
                owner.Dispose();
                throw;
            }
        }
        if (config?.QuantizationConfig is { } q)
            throw new LlmqException($"{path}: quantized checkpoint (quant_method '{(string?)q["quant_method"] ?? "?"}', format '{(string?)q["format"] ?? "?"}') " +
                $"that evaluation cannot dequantize yet (readers: {(Formats.Count == 0 ? "none" : string.Join(", ", Formats.Select(f => f.Name)))})");
        if (config is null)
            throw new LlmqException($"{path}: no config.json (evaluation needs a model directory)");
        return new EvaluationModel(DecoderModel.Open(path), "dense", null);
    }

    public void Dispose()
    {
        Model.Dispose();
        _owner?.Dispose();
    }
}
