using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Numerics;

/// <summary>
/// float8 e4m3fn as PyTorch defines it (<c>torch.float8_e4m3fn</c>, safetensors <c>F8_E4M3</c>): sign, 4 exponent bits
/// (bias 7), 3 mantissa bits; subnormals m·2⁻⁹; max ±448 (0x7E/0xFE); NaN = 0x7F/0xFF; no infinities.
/// <see cref="FromFloat"/> is PyTorch's cast: round to nearest even, and anything that rounds beyond 448 (including ±inf)
/// becomes NaN. <see cref="FromFloatSaturating"/> clamps to ±448 first — what the quantizers need.
/// </summary>
public static class Float8E4M3
{
    public const float MaxValue = 448f;
    public const byte NaN = 0x7F;

    static readonly float[] Decode = Float8Codec.Table(Reference.ToFloat);
    static readonly Float8Codec Codec = new(3, 7);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(byte b) => Decode[b];

    /// <summary>PyTorch's float → e4m3fn cast (RNE; overflow and inf → NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FromFloat(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        uint sign = (bits >> 24) & 0x80;
        bits &= 0x7FFF_FFFF;
        // ≥ 480 (the first value past 448's rounding interval), inf and NaN all become NaN.
        uint r = bits >= 0x43F0_0000 ? 0x7F : Codec.EncodeMagnitude(bits);
        return (byte)(r | sign);
    }

    /// <summary>Clamp to ±448, then RNE (NaN stays NaN). The cast every quantizer uses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FromFloatSaturating(float f) => FromFloat(Math.Clamp(f, -MaxValue, MaxValue));

    // The vector paths inline Float8Codec's arithmetic: 2¹⁴ has ulp 2⁻⁹ (the subnormal step); re-bias 127 → 7 and round at bit 20.
    const uint DenormAddBits = 141u << 23;
    static readonly float DenormAdd = BitConverter.UInt32BitsToSingle(DenormAddBits);
    const uint NormalBias = unchecked((uint)((7 - 127) << 23) + 0x7FFFF);

    /// <summary>Decodes e4m3fn bytes to float32.</summary>
    public static void ToFloat32(ReadOnlySpan<byte> src, Span<float> dst) => Float8Codec.Decode(Decode, src, dst);

    /// <summary>Bulk <see cref="FromFloat"/> (or <see cref="FromFloatSaturating"/>), vectorized; equal to the scalar cast element by element.</summary>
    public static void FromFloat32(ReadOnlySpan<float> src, Span<byte> dst, bool saturate = false)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        int i = 0;
        var bits = MemoryMarshal.Cast<float, uint>(src);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + Vector512<uint>.Count <= src.Length; i += Vector512<uint>.Count)
            {
                var v = Vector512.LoadUnsafe(ref MemoryMarshal.GetReference(bits), (nuint)i);
                if (saturate) v = Vector512.Min(v & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x43E0_0000u)) | (v & Vector512.Create(0x8000_0000u)) | NaNMask512(v);
                var r = Encode512(v);
                Store(r.GetLower(), dst.Slice(i));
                Store(r.GetUpper(), dst.Slice(i + 8));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<uint>.Count <= src.Length; i += Vector256<uint>.Count)
            {
                var v = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(bits), (nuint)i);
                if (saturate) v = Vector256.Min(v & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x43E0_0000u)) | (v & Vector256.Create(0x8000_0000u)) | NaNMask256(v);
                Store(Encode256(v), dst.Slice(i));
            }
        }
        for (; i < src.Length; i++)
            dst[i] = saturate ? FromFloatSaturating(src[i]) : FromFloat(src[i]);
    }

    /// <summary>Codes of <c>clamp(src[i] / divisor, ±448)</c> (float32 division, then RNE) — the FP8 quantizer's inner loop, vectorized.</summary>
    public static void FromFloat32Scaled(ReadOnlySpan<float> src, float divisor, Span<byte> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var d = Vector512.Create(divisor);
            for (; i + 16 <= src.Length; i += 16)
            {
                var t = Vector512.Clamp(Vector512.LoadUnsafe(ref MemoryMarshal.GetReference(src), (nuint)i) / d, Vector512.Create(-MaxValue), Vector512.Create(MaxValue));
                var r = Encode512(t.AsUInt32());
                Store(r.GetLower(), dst.Slice(i));
                Store(r.GetUpper(), dst.Slice(i + 8));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var d = Vector256.Create(divisor);
            for (; i + 8 <= src.Length; i += 8)
            {
                var t = Vector256.Clamp(Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(src), (nuint)i) / d, Vector256.Create(-MaxValue), Vector256.Create(MaxValue));
                Store(Encode256(t.AsUInt32()), dst.Slice(i));
            }
        }
        for (; i < src.Length; i++)
            dst[i] = FromFloatSaturating(src[i] / divisor);
    }

    // A NaN input must stay NaN through the saturating clamp: keep its exponent bits so the encoder sees ≥ 480.
    static Vector512<uint> NaNMask512(Vector512<uint> v) =>
        Vector512.GreaterThan(v & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u)) & Vector512.Create(0x7FC0_0000u);
    static Vector256<uint> NaNMask256(Vector256<uint> v) =>
        Vector256.GreaterThan(v & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u)) & Vector256.Create(0x7FC0_0000u);

    static Vector512<uint> Encode512(Vector512<uint> v)
    {
        var sign = Vector512.ShiftRightLogical(v, 24) & Vector512.Create(0x80u);
        var a = v & Vector512.Create(0x7FFF_FFFFu);
        var normal = Vector512.ShiftRightLogical(a + Vector512.Create(NormalBias) + (Vector512.ShiftRightLogical(a, 20) & Vector512.Create(1u)), 20);
        var sub = (Vector512.AsUInt32(Vector512.AsSingle(a) + Vector512.Create(DenormAdd))) - Vector512.Create(DenormAddBits);
        var r = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(0x3C80_0000u)), sub, normal);
        r = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(a, Vector512.Create(0x43F0_0000u)), Vector512.Create(0x7Fu), r);
        return r | sign;
    }

    static Vector256<uint> Encode256(Vector256<uint> v)
    {
        var sign = Vector256.ShiftRightLogical(v, 24) & Vector256.Create(0x80u);
        var a = v & Vector256.Create(0x7FFF_FFFFu);
        var normal = Vector256.ShiftRightLogical(a + Vector256.Create(NormalBias) + (Vector256.ShiftRightLogical(a, 20) & Vector256.Create(1u)), 20);
        var sub = (Vector256.AsUInt32(Vector256.AsSingle(a) + Vector256.Create(DenormAdd))) - Vector256.Create(DenormAddBits);
        var r = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(0x3C80_0000u)), sub, normal);
        r = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, Vector256.Create(0x43F0_0000u)), Vector256.Create(0x7Fu), r);
        return r | sign;
    }

    // Narrow 8 uint lanes holding byte values into 8 consecutive bytes (portable Narrow keeps lane order).
    static void Store(Vector256<uint> r, Span<byte> dst)
    {
        var s = Vector256.Narrow(r, r);
        var b = Vector256.Narrow(s, s);
        MemoryMarshal.Write(dst, b.AsUInt64().GetElement(0));
    }

    /// <summary>Bit-level definition, independent of the fast paths (used to build the decode table and by tests).</summary>
    public static class Reference
    {
        public static float ToFloat(byte b)
        {
            int exp = (b >> 3) & 0xF, man = b & 0x7;
            if (exp == 0xF && man == 0x7) return float.NaN;
            float magnitude = exp == 0 ? man * MathF.Pow(2, -9) : (1 + man / 8f) * MathF.Pow(2, exp - 7);
            return (b & 0x80) != 0 ? -magnitude : magnitude;
        }
    }
}
