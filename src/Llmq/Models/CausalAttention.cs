using System.Buffers;
using System.Numerics.Tensors;
using Llmq.Numerics;

namespace Llmq.Models;

/// <summary>Full-sequence causal self-attention with grouped-query heads (no KV cache: every position of every sample at once).
/// Per (sample, head) and per block of queries, <c>S = Q·Kᵀ</c> and <c>O = softmax(S)·V</c> are GEMMs over only the keys
/// the block can see, so the causal half above the diagonal is mostly never computed.</summary>
public static class CausalAttention
{
    /// <summary>Queries per GEMM: small enough to skip most of the masked triangle, large enough to keep the GEMM efficient.</summary>
    const int QueryBlock = 64;

    /// <summary>
    /// <paramref name="q"/>[batch, heads, seqLen, headDim] already rotated and scaled by 1/√headDim;
    /// <paramref name="k"/>, <paramref name="v"/>[batch, kvHeads, seqLen, headDim] (query head h reads kv head h / (heads / kvHeads));
    /// writes <paramref name="output"/>[batch · seqLen, heads · headDim] (the layout o_proj reads).
    /// <paramref name="slidingWindow"/> &gt; 0 lets position i see only keys j with i − j &lt; window (Mistral).
    /// </summary>
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        int batch, int seqLen, int heads, int kvHeads, int headDim, int slidingWindow = 0)
    {
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} heads are not a multiple of {kvHeads} kv heads");
        long qLen = (long)batch * heads * seqLen * headDim, kvLen = (long)batch * kvHeads * seqLen * headDim;
        if (q.Length < qLen || k.Length < kvLen || v.Length < kvLen || output.Length < qLen)
            throw new ArgumentException("q, k, v or output is shorter than its shape");
        int group = heads / kvHeads;
        unsafe
        {
            fixed (float* pq = q, pk = k, pv = v, po = output)
            {
                nint qp = (nint)pq, kp = (nint)pk, vp = (nint)pv, op = (nint)po;
                Parallel.For(0, batch * heads, bh =>
                {
                    int b = bh / heads, h = bh % heads;
                    long headSize = (long)seqLen * headDim;
                    var qh = new ReadOnlySpan<float>((float*)qp + (long)bh * headSize, (int)headSize);
                    var kh = new ReadOnlySpan<float>((float*)kp + ((long)b * kvHeads + h / group) * headSize, (int)headSize);
                    var vh = new ReadOnlySpan<float>((float*)vp + ((long)b * kvHeads + h / group) * headSize, (int)headSize);
                    float* outBase = (float*)op + (long)b * seqLen * heads * headDim + (long)h * headDim;
                    OneHead(qh, kh, vh, outBase, seqLen, heads * headDim, headDim, slidingWindow);
                });
            }
        }
    }

    static unsafe void OneHead(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, float* output,
        int seqLen, int outputStride, int headDim, int window)
    {
        var scoresArray = ArrayPool<float>.Shared.Rent(QueryBlock * seqLen);
        var blockOutArray = ArrayPool<float>.Shared.Rent(QueryBlock * headDim);
        try
        {
            for (int i0 = 0; i0 < seqLen; i0 += QueryBlock)
            {
                int i1 = Math.Min(seqLen, i0 + QueryBlock), rows = i1 - i0;
                int lo = window > 0 ? Math.Max(0, i0 - window + 1) : 0, keys = i1 - lo;
                var scores = scoresArray.AsSpan(0, rows * keys); // [rows × keys]
                var blockOut = blockOutArray.AsSpan(0, rows * headDim); // [rows × headDim]
                Gemm.MatMulTransposeB(q.Slice(i0 * headDim, rows * headDim), k.Slice(lo * headDim, keys * headDim),
                    scores, rows, keys, headDim);
                for (int r = 0; r < rows; r++)
                {
                    int i = i0 + r;
                    int first = window > 0 ? Math.Max(lo, i - window + 1) - lo : 0, last = i - lo; // visible keys, inclusive
                    var row = scores.Slice(r * keys, keys);
                    row[..first].Clear();
                    Softmax(row[first..(last + 1)]);
                    row[(last + 1)..].Clear();
                }
                Gemm.MatMul(scores, v.Slice(lo * headDim, keys * headDim), blockOut, rows, headDim, keys);
                for (int r = 0; r < rows; r++)
                    blockOut.Slice(r * headDim, headDim).CopyTo(new Span<float>(output + (long)(i0 + r) * outputStride, headDim));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scoresArray);
            ArrayPool<float>.Shared.Return(blockOutArray);
        }
    }

    /// <summary>Numerically stable: subtracts the maximum before exponentiating.</summary>
    internal static void Softmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        TensorPrimitives.Multiply(x, 1f / TensorPrimitives.Sum(x), x);
    }
}
