namespace Llmq.Numerics;

/// <summary>
/// What e4m3fn and e5m2 share: a 256-entry decode table and PyTorch's float32 → float8 rounding of a magnitude that is in
/// range (overflow, inf and NaN are each format's own business). Normal values re-bias the exponent and round the dropped
/// mantissa bits to nearest even; values below the smallest normal are rounded by a float32 addition whose ulp is exactly
/// the format's subnormal step.
/// </summary>
internal readonly struct Float8Codec(int mantissaBits, int bias)
{
    readonly int shift = 23 - mantissaBits;
    readonly uint minNormalBits = (uint)(1 - bias + 127) << 23;
    // 2^(e) with ulp 2^(1 − bias − mantissaBits): e = 1 − bias − mantissaBits + 23.
    public readonly uint DenormAddBits = (uint)(127 + 24 - bias - mantissaBits) << 23;

    uint NormalBias => unchecked((uint)((bias - 127) << 23) + ((1u << (shift - 1)) - 1));

    /// <summary>Code bits (without sign) of a finite magnitude whose rounding stays in range.</summary>
    public uint EncodeMagnitude(uint absBits)
    {
        if (absBits < minNormalBits)
            return BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(absBits) + BitConverter.UInt32BitsToSingle(DenormAddBits)) - DenormAddBits;
        return (absBits + NormalBias + ((absBits >> shift) & 1)) >> shift;
    }

    public static float[] Table(Func<byte, float> reference)
    {
        var t = new float[256];
        for (int i = 0; i < 256; i++) t[i] = reference((byte)i);
        return t;
    }

    public static void Decode(float[] table, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = table[src[i]];
    }
}
