using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Llmq.Numerics;

/// <summary>IEEE binary16 stored as its raw 16 bits (1 sign, 5 exponent, 10 mantissa bits; max 65504, subnormals down to 2⁻²⁴).
/// Widening is exact (a NaN is quietened). Narrowing rounds to nearest, ties to even; magnitudes ≥ 65520 become ±∞; NaN stays NaN with its sign
/// and upper payload bits, quietened. The scalar methods are the reference; the bulk methods run TensorPrimitives'
/// vectorized Half conversions, which the tests check against the reference over every bit pattern.</summary>
public static class Float16
{
    public const ushort PositiveInfinity = 0x7C00;
    public const ushort NegativeInfinity = 0xFC00;
    public const float MaxValue = 65504f;

    public static float ToFloat(ushort bits)
    {
        uint sign = (uint)(bits & 0x8000) << 16;
        int exponent = (bits >> 10) & 0x1F;
        uint mantissa = bits & 0x3FFu;
        if (exponent == 0x1F) // ±∞, or NaN quietened as the hardware conversion does
            return BitConverter.UInt32BitsToSingle(sign | 0x7F800000u | (mantissa == 0 ? 0 : 0x400000u | (mantissa << 13)));
        if (exponent == 0) // zero or subnormal: mantissa · 2⁻²⁴, exact in float32
            return BitConverter.UInt32BitsToSingle(sign | BitConverter.SingleToUInt32Bits(mantissa * 5.9604645E-08f));
        return BitConverter.UInt32BitsToSingle(sign | ((uint)(exponent + 112) << 23) | (mantissa << 13));
    }

    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint sign = (bits >> 16) & 0x8000u;
        uint abs = bits & 0x7FFFFFFFu;
        if (abs > 0x7F800000u) // NaN
            return (ushort)(sign | 0x7E00u | ((abs & 0x7FFFFFu) >> 13));
        if (abs >= 0x477FF000u) // ≥ 65520 (half-way between 65504 and 2¹⁶): rounds to infinity
            return (ushort)(sign | PositiveInfinity);
        if (abs < 0x38800000u) // below 2⁻¹⁴: subnormal result, count of 2⁻²⁴ units rounded to even (1024 = smallest normal)
        {
            float units = BitConverter.UInt32BitsToSingle(abs) * 16777216f;
            return (ushort)(sign | (uint)MathF.Round(units, MidpointRounding.ToEven));
        }
        // Rebias the exponent (127 → 15) and drop 13 mantissa bits, ties to even; a carry moves into the exponent.
        uint rebased = abs - 0x38000000u;
        return (ushort)(sign | ((rebased + 0xFFFu + ((rebased >> 13) & 1)) >> 13));
    }

    /// <summary>dst[i] = binary16 src[i] widened to float32 (exact).</summary>
    public static void ToFloat32(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length)
            throw new ArgumentException("destination shorter than source", nameof(dst));
        TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(src), dst[..src.Length]);
    }

    /// <summary>dst[i] = float32 src[i] rounded to binary16 (nearest, ties to even; NaN kept).</summary>
    public static void FromFloat32(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length)
            throw new ArgumentException("destination shorter than source", nameof(dst));
        TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<ushort, Half>(dst[..src.Length]));
    }
}
