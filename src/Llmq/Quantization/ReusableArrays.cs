namespace Llmq.Quantization;

/// <summary>
/// Large arrays of exact lengths kept for reuse between the tensors of a streaming pass. A fresh large array costs one
/// page fault per 4 KiB on first touch, and the garbage collector hands freed large-object memory back to the OS between
/// tensors: on a 1B model that was ~300,000 faults, a third of NVFP4 quantization's CPU time. A model's Linear shapes
/// repeat in every layer, so a few arrays per element type cover them. Bounded: at most <see cref="Slots"/> arrays per
/// type; a returned array replaces the oldest one kept. Rent falls back to a new array; never returning one is harmless.
/// </summary>
static class ReusableArrays<T> where T : unmanaged
{
    const int Slots = 12;
    const int MinLength = 1 << 16;   // smaller arrays live and die cheaply in gen 0
    static readonly T[]?[] kept = new T[Slots][];
    static int next;

    /// <summary>An array of exactly <paramref name="length"/> elements, not cleared.</summary>
    public static T[] Rent(int length)
    {
        if (length >= MinLength)
            lock (kept)
                for (int i = 0; i < Slots; i++)
                    if (kept[i] is { } a && a.Length == length)
                    {
                        kept[i] = null;
                        return a;
                    }
        return GC.AllocateUninitializedArray<T>(length);
    }

    /// <summary>Gives back an array the caller no longer uses (nor anything it handed the array to).</summary>
    public static void Return(T[] array)
    {
        if (array.Length < MinLength) return;
        lock (kept)
        {
            int free = Array.IndexOf(kept, null);
            kept[free >= 0 ? free : next++ % Slots] = array;
        }
    }
}
