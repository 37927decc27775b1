namespace Llmq;

/// <summary>Base of every error Llmq raises on purpose: bad input, unsupported models, failed numerics.
/// The CLI turns these into a one-line message and a non-zero exit code.</summary>
public class LlmqException : Exception
{
    public LlmqException(string message) : base(message) { }
    public LlmqException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A checkpoint file (safetensors, GGUF, index, config) is corrupt or not what it claims to be.
/// Names the file and, where one is involved, the tensor.</summary>
public class InvalidCheckpointException : LlmqException
{
    public string File { get; }
    public string? Tensor { get; }

    public InvalidCheckpointException(string file, string? tensor, string problem)
        : base(Describe(file, tensor, problem))
    {
        File = file;
        Tensor = tensor;
    }

    static string Describe(string file, string? tensor, string problem) =>
        tensor is null ? $"{file}: {problem}" : $"{file}: tensor '{tensor}': {problem}";
}
