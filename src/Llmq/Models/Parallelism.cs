namespace Llmq.Models;

/// <summary>Splits <c>[0, count)</c> into a few contiguous chunks per core so cheap per-row work amortizes scheduling.</summary>
internal static class Parallelism
{
    public static void ForChunks(int count, int minChunk, Action<int, int> body)
    {
        int chunks = Math.Min(Environment.ProcessorCount * 4, Math.Max(1, count / Math.Max(1, minChunk)));
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, chunks, c => body((int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks)));
    }
}
