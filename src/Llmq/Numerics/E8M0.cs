namespace Llmq.Numerics;

/// <summary>
/// E8M0 (OCP MX scale): an unsigned biased exponent byte <c>e</c> meaning <c>2^(e − 127)</c>; 255 is NaN.
/// compressed-tensors stores MX scales as these bytes (safetensors <c>U8</c>).
/// </summary>
public static class E8M0
{
    public const byte NaN = 255;

    /// <summary>2^(e − 127) (exact: 2⁻¹²⁷ is a float32 subnormal); NaN for 255.</summary>
    public static float ToFloat(byte e) => e == NaN ? float.NaN : MathF.ScaleB(1f, e - 127);

    /// <summary>
    /// The MX scale exponent of a group (compressed-tensors <c>generate_mx_scales</c>): round <paramref name="amax"/> to a power of two
    /// p (down, except up when its significand is ≥ 1.75 — adding half of the second mantissa bit's step then masking), then
    /// <c>e = 127 + log2(p) − <paramref name="elementMaxExponent"/></c> clamped to [0, 255]. amax 0 (or a subnormal that stays below
    /// 2⁻¹²⁶) gives 0. <paramref name="elementMaxExponent"/> is floor(log2(max element)): 2 for E2M1 (6), 8 for E4M3 (448).
    /// </summary>
    public static byte ScaleExponent(float amax, int elementMaxExponent)
    {
        uint bits = BitConverter.SingleToUInt32Bits(MathF.Abs(amax));
        if (float.IsNaN(amax)) return NaN;
        int biased = (int)(((bits + (1u << 21)) >> 23) & 0xFF);   // exponent field after the round-up carry
        if (biased == 0) return 0;                                 // log2(0) = −inf → clamps to 0
        int e = biased - elementMaxExponent;                       // 127 + (biased − 127) − offset
        return (byte)Math.Clamp(e, 0, 255);
    }
}
