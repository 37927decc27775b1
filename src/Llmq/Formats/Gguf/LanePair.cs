using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>Two <see cref="Vector512{T}"/>s of floats (lanes 0–15 in <see cref="A"/>, 16–31 in <see cref="B"/>) that every
/// operation treats alike. The K-quant searches run on pairs so that each of their serial sums is two independent
/// dependency chains: one chain of float adds leaves most of a core's vector units idle waiting on add latency.</summary>
internal struct LanePair
{
    public const int Lanes = 32;

    public Vector512<float> A, B;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public LanePair(Vector512<float> a, Vector512<float> b)
    {
        A = a;
        B = b;
    }

    public static LanePair Zero => default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Create(float value) => new(Vector512.Create(value), Vector512.Create(value));

    /// <summary>Lanes 0…31 from <paramref name="values"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Create(ReadOnlySpan<float> values) => new(Vector512.Create(values), Vector512.Create(values[16..]));

    /// <summary>Lanes 0…31 into <paramref name="destination"/>.</summary>
    public readonly void CopyTo(Span<float> destination)
    {
        A.CopyTo(destination);
        B.CopyTo(destination[16..]);
    }

    public readonly float this[int lane] => lane < 16 ? A.GetElement(lane) : B.GetElement(lane - 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator +(LanePair x, LanePair y) => new(x.A + y.A, x.B + y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator -(LanePair x, LanePair y) => new(x.A - y.A, x.B - y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator *(LanePair x, LanePair y) => new(x.A * y.A, x.B * y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator /(LanePair x, LanePair y) => new(x.A / y.A, x.B / y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator &(LanePair x, LanePair y) => new(x.A & y.A, x.B & y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator |(LanePair x, LanePair y) => new(x.A | y.A, x.B | y.B);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair operator ^(LanePair x, LanePair y) => new(x.A ^ y.A, x.B ^ y.B);

    // comparisons give masks: all bits set in a lane where true
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Equal(LanePair x, LanePair y) => new(Vector512.Equals(x.A, y.A), Vector512.Equals(x.B, y.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Less(LanePair x, LanePair y) => new(Vector512.LessThan(x.A, y.A), Vector512.LessThan(x.B, y.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Greater(LanePair x, LanePair y) => new(Vector512.GreaterThan(x.A, y.A), Vector512.GreaterThan(x.B, y.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair GreaterOrEqual(LanePair x, LanePair y) => new(Vector512.GreaterThanOrEqual(x.A, y.A), Vector512.GreaterThanOrEqual(x.B, y.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair LessOrEqual(LanePair x, LanePair y) => new(Vector512.LessThanOrEqual(x.A, y.A), Vector512.LessThanOrEqual(x.B, y.B));

    /// <summary>Lane by lane <paramref name="mask"/> ? <paramref name="x"/> : <paramref name="y"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Select(LanePair mask, LanePair x, LanePair y) =>
        new(Vector512.ConditionalSelect(mask.A, x.A, y.A), Vector512.ConditionalSelect(mask.B, x.B, y.B));

    /// <summary>Whether a mask is set in any lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Any(LanePair mask) => (mask.A.AsUInt32() | mask.B.AsUInt32()) != Vector512<uint>.Zero;

    /// <summary>Whether a mask is set in every lane (a set lane is a NaN as a float, so not compared as one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool All(LanePair mask) => (mask.A.AsUInt32() & mask.B.AsUInt32()) == Vector512<uint>.AllBitsSet;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Abs(LanePair x) => new(Vector512.Abs(x.A), Vector512.Abs(x.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Sqrt(LanePair x) => new(Vector512.Sqrt(x.A), Vector512.Sqrt(x.B));

    /// <summary>Round to nearest, ties to even (the rounding of ggml's nearest_int for |x| &lt; 2^22).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair Round(LanePair x) => new(Vector512.Round(x.A), Vector512.Round(x.B));

    /// <summary>x86 min/max: the second operand where the lanes are unordered or both zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair MinNative(LanePair x, LanePair y) => new(Vector512.MinNative(x.A, y.A), Vector512.MinNative(x.B, y.B));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LanePair MaxNative(LanePair x, LanePair y) => new(Vector512.MaxNative(x.A, y.A), Vector512.MaxNative(x.B, y.B));
}
