using Llmq.Quantization;

namespace Llmq.Algorithms;

/// <summary>GPTQ activation ordering (llm-compressor's <c>actorder</c>): columns are processed in order of decreasing
/// Hessian diagonal, so the inputs that matter most are quantized first, while the most weights remain to absorb
/// their error.</summary>
public enum ActOrder
{
    /// <summary>Columns in their natural order.</summary>
    None,
    /// <summary><c>static</c> / <c>weight</c>: processing order permuted, but every column keeps the group of its
    /// original position, so the stored layout is the plain one and no <c>g_idx</c> is needed (llm-compressor's default).</summary>
    Static,
    /// <summary><c>group</c> / <c>dynamic</c>: groups are formed over the permuted order; the stored <c>g_idx</c> maps
    /// every input column to its group (kernels then gather; slower to serve).</summary>
    Group,
}

/// <summary>When a group's scale and zero point are fixed.</summary>
public enum GroupQParams
{
    /// <summary>When the sweep reaches the group's first column, from the group's current, already error-updated
    /// weights (the GPTQ paper and AutoGPTQ with <c>static_groups=False</c>).</summary>
    AtGroupStart,
    /// <summary>Once, from the weight as given, before the sweep (llm-compressor ≥ 0.4, AutoGPTQ <c>static_groups=True</c>).</summary>
    BeforeSweep,
}

/// <summary>Knobs of <see cref="Gptq.Quantize"/>; defaults are llm-compressor's <c>GPTQModifier</c> defaults.</summary>
public sealed record GptqOptions
{
    /// <summary>Columns per lazy-update block (<c>block_size</c>).</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>λ = DampeningFrac · mean(diag H) is added to the Hessian diagonal (<c>dampening_frac</c>).</summary>
    public double DampeningFrac { get; init; } = 0.01;

    public ActOrder ActOrder { get; init; } = ActOrder.Static;

    public GroupQParams GroupQParams { get; init; } = GroupQParams.AtGroupStart;

    /// <summary>Fixes each group's scale and zero point (called per group as one channel per row); null = the observer the
    /// quantization args name. Lets GPTQ solve on another format's grid, e.g. ggml's Q4_0 / Q8_0 blocks.</summary>
    public IWeightObserver? Observer { get; init; }
}
