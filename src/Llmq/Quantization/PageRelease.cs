using System.Runtime.InteropServices;
using Llmq.Checkpoints;

namespace Llmq.Quantization;

/// <summary>
/// Drops a tensor's memory-mapped input pages from the process once it has been consumed (<c>madvise(MADV_DONTNEED)</c>
/// on Linux): a streaming pass over a model then keeps its resident set near one tensor instead of growing to the whole
/// file. The pages stay in the page cache; touching them again simply maps them back. Elsewhere it does nothing.
/// </summary>
static partial class PageRelease
{
    const int MadvDontNeed = 4;

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static unsafe partial int MAdvise(void* address, nuint length, int advice);

    public static unsafe void Release(Checkpoint checkpoint, TensorInfo tensor)
    {
        if (!OperatingSystem.IsLinux() || tensor.ByteLength < 1 << 20) return;
        var file = checkpoint.Files.First(f => f.Path == tensor.File);
        long page = Environment.SystemPageSize;
        long begin = (long)file.Pointer(tensor), end = begin + tensor.ByteLength;
        long first = (begin + page - 1) / page * page, last = end / page * page;   // whole pages inside the tensor only
        if (last > first) MAdvise((void*)first, (nuint)(last - first), MadvDontNeed);
    }
}
