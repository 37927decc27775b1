using System.Runtime.CompilerServices;

namespace Llmq.Numerics;

/// <summary>
/// float8 e5m2 as PyTorch defines it (<c>torch.float8_e5m2</c>, safetensors <c>F8_E5M2</c>): IEEE-like with 5 exponent bits
/// (bias 15) and 2 mantissa bits — it has ±inf (0x7C/0xFC) and NaNs (0x7D–0x7F); max finite ±57344.
/// <see cref="FromFloat"/> is PyTorch's cast: RNE, values that round past 57344 become ±inf, NaN stays NaN.
/// </summary>
public static class Float8E5M2
{
    public const float MaxValue = 57344f;

    static readonly float[] Decode = Float8Codec.Table(Reference.ToFloat);
    static readonly Float8Codec Codec = new(2, 15);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(byte b) => Decode[b];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FromFloat(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        uint sign = (bits >> 24) & 0x80;
        bits &= 0x7FFF_FFFF;
        // ≥ 65536 (past the largest rounding interval) and inf become inf; NaN stays NaN.
        uint r = bits >= 0x4780_0000 ? (bits > 0x7F80_0000 ? 0x7Fu : 0x7Cu) : Codec.EncodeMagnitude(bits);
        return (byte)(r | sign);
    }

    /// <summary>Clamp to ±57344 first (NaN stays NaN).</summary>
    public static byte FromFloatSaturating(float f) => FromFloat(Math.Clamp(f, -MaxValue, MaxValue));

    public static void ToFloat32(ReadOnlySpan<byte> src, Span<float> dst) => Float8Codec.Decode(Decode, src, dst);

    public static void FromFloat32(ReadOnlySpan<float> src, Span<byte> dst, bool saturate = false)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++)
            dst[i] = saturate ? FromFloatSaturating(src[i]) : FromFloat(src[i]);
    }

    /// <summary>Bit-level definition, independent of the fast paths.</summary>
    public static class Reference
    {
        public static float ToFloat(byte b)
        {
            int exp = (b >> 2) & 0x1F, man = b & 0x3;
            if (exp == 0x1F && man != 0) return float.NaN;
            float magnitude = exp == 0x1F ? float.PositiveInfinity : exp == 0 ? man * MathF.Pow(2, -16) : (1 + man / 4f) * MathF.Pow(2, exp - 15);
            return (b & 0x80) != 0 ? -magnitude : magnitude;
        }
    }
}
