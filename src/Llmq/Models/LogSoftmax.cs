using System.Buffers;
using System.Numerics.Tensors;

namespace Llmq.Models;

/// <summary>Log-probabilities from one row of logits: <c>log p_i = (x_i − max) − log Σ exp(x_j − max)</c>.
/// Subtracting the maximum first keeps exp from overflowing and keeps precision when the logits are large.</summary>
public static class LogSoftmax
{
    /// <summary>Every log-probability of one row into <paramref name="result"/> (may be <paramref name="logits"/> itself).</summary>
    public static void Apply(ReadOnlySpan<float> logits, Span<float> result)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, result);
        TensorPrimitives.Subtract(result, LogSumExpOfShifted(result), result);
    }

    /// <summary><c>log p(token)</c> under one row of logits.</summary>
    public static float LogProbability(ReadOnlySpan<float> logits, int token)
    {
        float max = TensorPrimitives.Max(logits);
        var scratch = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            var shifted = scratch.AsSpan(0, logits.Length);
            TensorPrimitives.Subtract(logits, max, shifted);
            return shifted[token] - LogSumExpOfShifted(shifted);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    /// <summary><c>log Σ exp(s_j)</c> of a row whose maximum is 0.</summary>
    static float LogSumExpOfShifted(ReadOnlySpan<float> shifted)
    {
        var scratch = ArrayPool<float>.Shared.Rent(shifted.Length);
        try
        {
            var e = scratch.AsSpan(0, shifted.Length);
            TensorPrimitives.Exp(shifted, e);
            return MathF.Log(TensorPrimitives.Sum(e));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }
}
