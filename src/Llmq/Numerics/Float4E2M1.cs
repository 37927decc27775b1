using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Numerics;

/// <summary>
/// float4 e2m1 (OCP MX FP4, the element type of NVFP4 and MXFP4): code <c>s e1 e0 m</c>, magnitudes
/// <c>0, 0.5, 1, 1.5, 2, 3, 4, 6</c> for codes 0…7, bit 3 the sign; no inf/NaN. Codes are kept unpacked here
/// (one per byte, 0…15); packing two per byte (even element in the low nibble) is <see cref="PackPairs"/>.
/// </summary>
public static class Float4E2M1
{
    public const float MaxValue = 6f;

    static readonly float[] Values = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    /// <summary>The value of a 4-bit code (0x8, negative zero, decodes to −0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(byte code) => Values[code & 0xF];

    /// <summary>
    /// Round to the nearest E2M1 value, ties to even mantissa, saturating at ±6 — compressed-tensors' threshold table:
    /// ≤0.25→0, &lt;0.75→0.5, ≤1.25→1, &lt;1.75→1.5, ≤2.5→2, &lt;3.5→3, ≤5→4, else 6. A negative input keeps the sign bit
    /// even when it rounds to zero (code 0x8); −0 and NaN give code 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FromFloat(float x)
    {
        float a = MathF.Abs(x);
        int m = (a > 0.25f ? 1 : 0) + (a >= 0.75f ? 1 : 0) + (a > 1.25f ? 1 : 0) + (a >= 1.75f ? 1 : 0)
              + (a > 2.5f ? 1 : 0) + (a >= 3.5f ? 1 : 0) + (a > 5f ? 1 : 0);
        return (byte)(m | (x < 0 ? 8 : 0));
    }

    /// <summary>Codes of <c>src[i] / divisor</c> (a float32 division, as the quantizer does), vectorized; equal to the scalar path.</summary>
    public static void FromFloat32(ReadOnlySpan<float> src, float divisor, Span<byte> codes)
    {
        if (codes.Length < src.Length) throw new ArgumentException("destination too short", nameof(codes));
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var d = Vector256.Create(divisor);
            for (; i + 8 <= src.Length; i += 8)
            {
                var t = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(src), (nuint)i) / d;
                var a = Vector256.Abs(t);
                var m = -(Vector256.GreaterThan(a, Vector256.Create(0.25f)).AsInt32()
                        + Vector256.GreaterThanOrEqual(a, Vector256.Create(0.75f)).AsInt32()
                        + Vector256.GreaterThan(a, Vector256.Create(1.25f)).AsInt32()
                        + Vector256.GreaterThanOrEqual(a, Vector256.Create(1.75f)).AsInt32()
                        + Vector256.GreaterThan(a, Vector256.Create(2.5f)).AsInt32()
                        + Vector256.GreaterThanOrEqual(a, Vector256.Create(3.5f)).AsInt32()
                        + Vector256.GreaterThan(a, Vector256.Create(5f)).AsInt32());
                m |= Vector256.LessThan(t, Vector256<float>.Zero).AsInt32() & Vector256.Create(8);
                var s = Vector256.Narrow(m.AsUInt32(), m.AsUInt32());
                var b = Vector256.Narrow(s, s);
                MemoryMarshal.Write(codes.Slice(i), b.AsUInt64().GetElement(0));
            }
        }
        for (; i < src.Length; i++)
            codes[i] = FromFloat(src[i] / divisor);
    }

    /// <summary>Packs codes two per byte: <c>byte[k] = code[2k] | code[2k+1] &lt;&lt; 4</c> (even element low). Length must be even.</summary>
    public static void PackPairs(ReadOnlySpan<byte> codes, Span<byte> packed)
    {
        if ((codes.Length & 1) != 0) throw new ArgumentException("an even number of codes is required", nameof(codes));
        if (packed.Length < codes.Length / 2) throw new ArgumentException("destination too short", nameof(packed));
        int k = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // Two codes as one little-endian ushort c0 | c1 << 8 → c0 & 0xF | (c1 & 0xF) << 4, then narrowed to bytes.
            ref byte c = ref MemoryMarshal.GetReference(codes);
            for (; 2 * k + 64 <= codes.Length; k += 32)
            {
                var a = Vector256.LoadUnsafe(ref c, (nuint)(2 * k)).AsUInt16();
                var b = Vector256.LoadUnsafe(ref c, (nuint)(2 * k + 32)).AsUInt16();
                Vector256.Narrow(Pair(a), Pair(b)).StoreUnsafe(ref MemoryMarshal.GetReference(packed), (nuint)k);
            }
        }
        for (; k < codes.Length / 2; k++)
            packed[k] = (byte)((codes[2 * k] & 0xF) | (codes[2 * k + 1] << 4));
    }

    static Vector256<ushort> Pair(Vector256<ushort> v) =>
        (v & Vector256.Create((ushort)0x0F)) | (Vector256.ShiftRightLogical(v, 4) & Vector256.Create((ushort)0xF0));

    /// <summary>Inverse of <see cref="PackPairs"/>.</summary>
    public static void UnpackPairs(ReadOnlySpan<byte> packed, Span<byte> codes)
    {
        if (codes.Length < packed.Length * 2) throw new ArgumentException("destination too short", nameof(codes));
        for (int k = 0; k < packed.Length; k++)
        {
            codes[2 * k] = (byte)(packed[k] & 0xF);
            codes[2 * k + 1] = (byte)(packed[k] >> 4);
        }
    }
}
