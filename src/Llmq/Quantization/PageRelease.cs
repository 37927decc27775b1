using System.Runtime.InteropServices;
using Llmq.Checkpoints;

namespace Llmq.Quantization;

/// <summary>
/// Paging advice for a streaming pass over a memory-mapped checkpoint (Linux <c>madvise</c>; elsewhere nothing).
/// <see cref="Release"/> drops a consumed tensor's pages from the process (<c>MADV_DONTNEED</c>), so the resident set stays
/// near one tensor instead of growing to the whole file; the pages stay in the page cache. <see cref="Prefetch"/> asks the
/// kernel to start reading a tensor that is about to be used (<c>MADV_WILLNEED</c>), so that disk reads of a model that
/// is not in the page cache overlap the quantization of the tensors before it instead of stalling page fault by page fault.
/// </summary>
static partial class PageRelease
{
    const int MadvWillNeed = 3, MadvDontNeed = 4, MadvPopulateRead = 22;

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static unsafe partial int MAdvise(void* address, nuint length, int advice);

    public static void Release(Checkpoint checkpoint, TensorInfo tensor) => Advise(checkpoint, tensor, MadvDontNeed, inside: true);

    /// <summary>Drops the pages wholly inside bytes [<paramref name="offset"/>, offset + <paramref name="length"/>) of a
    /// tensor: a large tensor released as it is streamed, so that it is never resident all at once.</summary>
    public static void Release(Checkpoint checkpoint, TensorInfo tensor, long offset, long length) =>
        Advise(checkpoint, tensor, MadvDontNeed, inside: true, offset, length);

    public static void Prefetch(Checkpoint checkpoint, TensorInfo tensor) => Advise(checkpoint, tensor, MadvWillNeed, inside: false);

    /// <summary>Maps a tensor's pages into the process in one call (<c>MADV_POPULATE_READ</c>, Linux ≥ 5.14; waits for any
    /// disk reads) instead of one page fault per 64 KiB as it is read: each fault is a trap, and traps are dear in a VM.</summary>
    public static void Populate(Checkpoint checkpoint, TensorInfo tensor) => Advise(checkpoint, tensor, MadvPopulateRead, inside: false);

    /// <param name="inside">Whole pages inside the tensor only (never touch a neighbour's pages), else every page it overlaps.</param>
    /// <param name="offset">where in the tensor the bytes start; <paramref name="length"/> −1: to its end</param>
    static unsafe void Advise(Checkpoint checkpoint, TensorInfo tensor, int advice, bool inside, long offset = 0, long length = -1)
    {
        if (!OperatingSystem.IsLinux() || tensor.ByteLength < 1 << 20) return;
        var file = checkpoint.Files.First(f => f.Path == tensor.File);
        long page = Environment.SystemPageSize;
        long begin = (long)file.Pointer(tensor) + offset, end = begin + (length < 0 ? tensor.ByteLength - offset : length);
        long first = inside ? (begin + page - 1) / page * page : begin / page * page;
        long last = inside ? end / page * page : (end + page - 1) / page * page;
        if (last > first) MAdvise((void*)first, (nuint)(last - first), advice);
    }
}
