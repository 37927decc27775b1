using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Numerics;

/// <summary>bfloat16 stored as its raw 16 bits: the upper half of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
/// Widening is exact. Narrowing rounds to nearest, ties to even (as PyTorch's <c>tensor.to(torch.bfloat16)</c>);
/// overflow rounds to ±∞; NaN stays NaN with its sign and upper payload bits, quietened (bit 6 set).</summary>
public static class BFloat16
{
    public const ushort PositiveInfinity = 0x7F80;
    public const ushort NegativeInfinity = 0xFF80;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x0040);
        // Adding 0x7FFF plus the lowest kept bit carries into the kept half exactly when the dropped half is
        // above one half, or equal to one half with an odd kept half: round to nearest, ties to even.
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary>dst[i] = bf16 src[i] widened to float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // every weight read passes here: no slow first tier
    public static void ToFloat32(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length)
            throw new ArgumentException("destination shorter than source", nameof(dst));
        int n = src.Length, i = 0;
        ref ushort s = ref MemoryMarshal.GetReference(src);
        ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<ushort>.Count; i += Vector512<ushort>.Count)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref s, (nuint)i));
                (lo << 16).StoreUnsafe(ref d, (nuint)i);
                (hi << 16).StoreUnsafe(ref d, (nuint)(i + Vector512<uint>.Count));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                (lo << 16).StoreUnsafe(ref d, (nuint)i);
                (hi << 16).StoreUnsafe(ref d, (nuint)(i + Vector256<uint>.Count));
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref d, i) = (uint)Unsafe.Add(ref s, i) << 16;
    }

    /// <summary>dst[i] = float32 src[i] rounded to bf16 (nearest, ties to even; NaN kept).</summary>
    public static void FromFloat32(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length)
            throw new ArgumentException("destination shorter than source", nameof(dst));
        int n = src.Length, i = 0;
        ref uint s = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(src));
        ref ushort d = ref MemoryMarshal.GetReference(dst);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<ushort>.Count; i += Vector512<ushort>.Count)
            {
                var lo = Round(Vector512.LoadUnsafe(ref s, (nuint)i));
                var hi = Round(Vector512.LoadUnsafe(ref s, (nuint)(i + Vector512<uint>.Count)));
                Vector512.Narrow(lo, hi).StoreUnsafe(ref d, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var lo = Round(Vector256.LoadUnsafe(ref s, (nuint)i));
                var hi = Round(Vector256.LoadUnsafe(ref s, (nuint)(i + Vector256<uint>.Count)));
                Vector256.Narrow(lo, hi).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref d, i) = FromFloat(BitConverter.UInt32BitsToSingle(Unsafe.Add(ref s, i)));
    }

    // The same rule as FromFloat, lane-wise; results are left in the low 16 bits of each lane.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> Round(Vector512<uint> bits)
    {
        var f = bits.AsSingle();
        var nan = ~Vector512.Equals(f, f).AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        var quiet = (bits >> 16) | Vector512.Create(0x40u);
        return Vector512.ConditionalSelect(nan, quiet, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> Round(Vector256<uint> bits)
    {
        var f = bits.AsSingle();
        var nan = ~Vector256.Equals(f, f).AsUInt32();
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        var quiet = (bits >> 16) | Vector256.Create(0x40u);
        return Vector256.ConditionalSelect(nan, quiet, rounded);
    }
}
