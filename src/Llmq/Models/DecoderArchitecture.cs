using Llmq.Checkpoints;

namespace Llmq.Models;

/// <summary>How one Hugging Face decoder-only architecture differs from plain Llama. Architecture knowledge is data:
/// every supported <c>architectures[0]</c> of config.json is one row of <see cref="Supported"/>.</summary>
/// <param name="Name">The class name in config.json, e.g. <c>Qwen2ForCausalLM</c>.</param>
/// <param name="QkvBias">q/k/v projections always carry a bias (Qwen2), whatever <c>attention_bias</c> says.</param>
/// <param name="QkNorm">RMSNorm over each head of q and k before RoPE (<c>self_attn.q_norm</c>, <c>self_attn.k_norm</c>; Qwen3).</param>
/// <param name="AttentionBiasFromConfig"><c>attention_bias: true</c> in config.json adds a bias to q/k/v/o (Llama, Mistral, Qwen3).</param>
/// <param name="SlidingWindowFromConfig"><c>sliding_window</c> in config.json limits how far back a query attends (Mistral).</param>
public sealed record DecoderArchitecture(
    string Name, bool QkvBias, bool QkNorm, bool AttentionBiasFromConfig, bool SlidingWindowFromConfig)
{
    public static readonly DecoderArchitecture Llama = new("LlamaForCausalLM", false, false, true, false);
    public static readonly DecoderArchitecture Mistral = new("MistralForCausalLM", false, false, true, true);
    public static readonly DecoderArchitecture Qwen2 = new("Qwen2ForCausalLM", true, false, false, false);
    public static readonly DecoderArchitecture Qwen3 = new("Qwen3ForCausalLM", false, true, true, false);

    public static IReadOnlyList<DecoderArchitecture> Supported { get; } = [Llama, Mistral, Qwen2, Qwen3];

    /// <summary>The row for config.json's first architecture; anything else is a <see cref="LlmqException"/> listing the supported ones.</summary>
    public static DecoderArchitecture For(ModelConfig config)
    {
        var name = config.Architectures.Count > 0 ? config.Architectures[0] : "(none)";
        return Supported.FirstOrDefault(a => a.Name == name)
            ?? throw new LlmqException(
                $"unsupported architecture '{name}' in config.json; supported: {string.Join(", ", Supported.Select(a => a.Name))}");
    }
}
