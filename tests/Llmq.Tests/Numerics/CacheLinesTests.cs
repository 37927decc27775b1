using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Llmq.Formats.Gguf;
using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class CacheLinesTests
{
    [Fact]
    public unsafe void AlignCarvesSpansOnCacheLinesFromAnyStart()
    {
        byte* raw = stackalloc byte[CacheLines.Bytes<LanePair>(5) + CacheLines.Size];
        for (int start = 0; start < CacheLines.Size; start++)
        {
            Check(CacheLines.Align<LanePair>(new Span<byte>(raw + start, CacheLines.Bytes<LanePair>(5)), 5), 5, raw + start);
            Check(CacheLines.Align<int>(new Span<byte>(raw + start, CacheLines.Bytes<int>(7)), 7), 7, raw + start);
        }

        static void Check<T>(Span<T> span, int count, byte* start) where T : unmanaged
        {
            nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(span));
            Assert.Equal(count, span.Length);
            Assert.Equal(0, address % CacheLines.Size);
            Assert.InRange(address - (nint)start, 0, CacheLines.Size - 1);   // inside the buffer, whatever its start
        }
    }
}
