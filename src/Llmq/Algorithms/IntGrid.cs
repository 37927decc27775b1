
namespace Llmq.Algorithms;

/// <summary>The integer grid of a TempQuantArgs as GPTQ uses it: the observer that fixes one slot's scale and zero
/// point, and the per-element rounding (spec §4.2, §4.3).</summary>
internal sealed class IntGrid
{
    readonly int _qmin, _qmax;
    readonly bool _symmetric;

    IntGrid(int bits, bool symmetric)
    {
        _qmin = -(1 << (bits - 1));
        _qmax = (1 << (bits - 1)) - 1;
        _symmetric = symmetric;
    }

    public static IntGrid For(TempQuantArgs args)
    {
        if (args.NumBits is < 2 or > 8) throw new LlmqException($"GPTQ quantizes to 2–8 bit integers, not {args.NumBits} bits");
        return new IntGrid(args.NumBits, args.Symmetric);
    }

    /// <summary>Memoryless min-max observer over one slot (spec §4.2).</summary>
    public (float Scale, int ZeroPoint) Observe(ReadOnlySpan<float> values)
    {
        float min = 0, max = 0;
        foreach (var v in values) { if (v < min) min = v; if (v > max) max = v; }
        float scale;
        var zp = 0;
        if (_symmetric)
            scale = Math.Max(-min, max) / ((_qmax - _qmin) / 2f);
        else
            scale = (max - min) / (_qmax - _qmin);
        if (scale == 0) scale = 1.1920929e-07f; // float32 eps, as the spec replaces zero scales
        if (!_symmetric)
            zp = (int)MathF.Round(Math.Clamp(_qmin - min / scale, _qmin, _qmax), MidpointRounding.ToEven);
        return (scale, zp);
    }

    /// <summary>q = RNE(clamp(x / scale + zp, qmin, qmax)).</summary>
    public int Quantize(float x, float scale, int zeroPoint) =>
        (int)MathF.Round(Math.Clamp(x / scale + zeroPoint, _qmin, _qmax), MidpointRounding.ToEven);
}
