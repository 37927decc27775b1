using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Llmq.Numerics;

/// <summary>Spans that start on a 64-byte cache line, carved from stack memory (which does not move): a 512-bit load or
/// store that straddles two lines costs two, and a load from a split store waits for it instead of being forwarded. The
/// stack itself is only 16-byte aligned, and where a buffer fell varied from run to run: unaligned, Q4_K's row kernel ran
/// 1–33 % slower, depending on the run.</summary>
internal static class CacheLines
{
    public const int Size = 64;

    /// <summary>Bytes to stackalloc for <see cref="Align{T}"/> to carve <paramref name="count"/> elements from.</summary>
    public static unsafe int Bytes<T>(int count) where T : unmanaged => count * sizeof(T) + Size - 1;

    /// <summary><paramref name="count"/> elements from the first cache line boundary inside <paramref name="raw"/>
    /// (<see cref="Bytes{T}"/> long).</summary>
    public static unsafe Span<T> Align<T>(Span<byte> raw, int count) where T : unmanaged
    {
        int skip = (int)(-(nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(raw)) & (Size - 1));
        return MemoryMarshal.Cast<byte, T>(raw.Slice(skip, count * sizeof(T)));
    }
}
