using System.Text.Json;
using System.Text.Json.Nodes;
using Llmq.Checkpoints;

namespace Llmq.Models;

/// <summary>Rotary position embedding in Hugging Face's rotate-half layout: the pairs are (x[i], x[i + d/2]), not interleaved.
/// For position p and frequency f_i: <c>x'[i] = x[i]·cos(p·f_i) − x[i+d/2]·sin(p·f_i)</c>,
/// <c>x'[i+d/2] = x[i+d/2]·cos(p·f_i) + x[i]·sin(p·f_i)</c>.
/// Frequencies <c>f_i = theta^(−2i/d)</c>, optionally rescaled by <c>rope_scaling</c> (types default, linear, llama3, and
/// freq_factors: llama.cpp's per-dimension divisors <c>f_i / factor_i</c>, as a GGUF's rope_freqs tensor holds them).</summary>
public sealed class RotaryEmbedding
{
    readonly int _half;
    readonly object _gate = new();
    float[] _cos = [], _sin = []; // [positions × d/2]
    int _positions;

    public int HeadDim { get; }

    /// <summary>The (possibly rescaled) inverse frequencies f_i, length d/2, in double precision.</summary>
    public double[] InverseFrequencies { get; }

    public RotaryEmbedding(int headDim, double theta, JsonObject? ropeScaling = null)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new LlmqException($"head_dim {headDim} must be a positive even number for RoPE");
        HeadDim = headDim;
        _half = headDim / 2;
        var inv = new double[_half];
        for (int i = 0; i < _half; i++) inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        InverseFrequencies = Rescale(inv, ropeScaling);
    }

    public static RotaryEmbedding For(ModelConfig config, int headDim) =>
        new(headDim, config.RopeTheta, config.RopeScaling);

    /// <summary>Rotates one head vector (length d) at position <paramref name="position"/> in place.
    /// <see cref="EnsurePositions"/> must have covered the position.</summary>
    public void Rotate(Span<float> x, int position)
    {
        var cos = new ReadOnlySpan<float>(_cos, position * _half, _half);
        var sin = new ReadOnlySpan<float>(_sin, position * _half, _half);
        var lo = x[.._half];
        var hi = x.Slice(_half, _half);
        for (int i = 0; i < _half; i++)
        {
            float a = lo[i], b = hi[i];
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = b * cos[i] + a * sin[i];
        }
    }

    /// <summary>Grows the cos/sin tables to cover positions <c>[0, count)</c>; computed in double, stored as float.</summary>
    public void EnsurePositions(int count)
    {
        lock (_gate)
        {
            if (count <= _positions) return;
            var cos = new float[count * _half];
            var sin = new float[count * _half];
            for (int p = 0; p < count; p++)
                for (int i = 0; i < _half; i++)
                {
                    double angle = p * InverseFrequencies[i];
                    cos[p * _half + i] = (float)Math.Cos(angle);
                    sin[p * _half + i] = (float)Math.Sin(angle);
                }
            (_cos, _sin, _positions) = (cos, sin, count);
        }
    }

    static double[] Rescale(double[] inv, JsonObject? scaling)
    {
        if (scaling is null) return inv;
        var type = (scaling["rope_type"] ?? scaling["type"])?.GetValue<string>() ?? "default";
        switch (type)
        {
            case "default":
                return inv;
            case "linear":
                double linear = Number(scaling, "factor");
                return inv.Select(f => f / linear).ToArray();
            case "llama3":
                return Llama3(inv, Number(scaling, "factor"), Number(scaling, "low_freq_factor"),
                    Number(scaling, "high_freq_factor"), Number(scaling, "original_max_position_embeddings"));
            case "freq_factors":
                if (scaling["freq_factors"] is not JsonArray factors || factors.Count != inv.Length)
                    throw new LlmqException($"config.json: rope_scaling freq_factors needs {inv.Length} numbers");
                return inv.Select((f, i) => f / (factors[i] ?? throw new LlmqException("config.json: rope_scaling freq_factors holds null")).Deserialize<double>()).ToArray();
            default:
                throw new LlmqException($"config.json: rope_scaling type '{type}' is not supported (supported: default, linear, llama3, freq_factors)");
        }
    }

    /// <summary>Llama 3.1's scaling: long wavelengths (beyond original_context / low_freq_factor) are divided by the factor,
    /// short ones (below original_context / high_freq_factor) kept, and those between blended linearly in
    /// <c>original_context / wavelength</c>.</summary>
    static double[] Llama3(double[] inv, double factor, double lowFreqFactor, double highFreqFactor, double originalContext)
    {
        double lowFreqWavelen = originalContext / lowFreqFactor;
        double highFreqWavelen = originalContext / highFreqFactor;
        var result = new double[inv.Length];
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            if (wavelen < highFreqWavelen) result[i] = inv[i];
            else if (wavelen > lowFreqWavelen) result[i] = inv[i] / factor;
            else
            {
                double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                result[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
            }
        }
        return result;
    }

    static double Number(JsonObject scaling, string key) =>
        scaling[key] is JsonValue v ? v.Deserialize<double>()
            : throw new LlmqException($"config.json: rope_scaling needs '{key}'");
}
