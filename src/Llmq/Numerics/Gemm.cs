using System.Buffers;
using System.Runtime.CompilerServices;

namespace Llmq.Numerics;

/// <summary>Single-precision matrix products, row-major, parallel over cores.
/// <para>Structure (after BLIS / Goto): C is cut into regions handed to worker tasks. Inside a region the loops run
/// columns (NC) → depth (KC) → rows (MC); each KC×NC slab of B and MC×KC block of A is packed into contiguous
/// micro-panels (<see cref="GemmKernels"/>) so the micro-kernel streams both with unit stride, the B micro-panel from L1
/// and the A block from L2. Edge tiles are zero-padded in the packed panels and clipped when the tile is stored.</para></summary>
public static partial class Gemm
{
    /// <summary>C[m×n] (+)= A[m×k]·B[n×k]ᵀ — the layout of a Linear layer (weights stored [out × in]).</summary>
    public static unsafe void MatMulTransposeB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
    {
        Check(a.Length, m, k, nameof(a)); Check(b.Length, n, k, nameof(b)); Check(c.Length, m, n, nameof(c));
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Multiply(new(pa, k, 1), new(pb, 1, k), pc, n, m, n, k, 1f, accumulate, Fill.Full);
    }

    /// <summary>C[m×n] (+)= A[m×k]·B[k×n].</summary>
    public static unsafe void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
    {
        Check(a.Length, m, k, nameof(a)); Check(b.Length, k, n, nameof(b)); Check(c.Length, m, n, nameof(c));
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Multiply(new(pa, k, 1), new(pb, n, 1), pc, n, m, n, k, 1f, accumulate, Fill.Full);
    }

    /// <summary>H[cols×cols] += alpha·XᵀX for X[rows×cols] (GPTQ's Hessian accumulation). Only the upper triangle is
    /// computed; each product is added to both H[i,j] and H[j,i], so H stays exactly symmetric if it was.</summary>
    public static unsafe void AddXtX(ReadOnlySpan<float> x, int rows, int cols, Span<float> h, float alpha = 1f)
    {
        Check(x.Length, rows, cols, nameof(x)); Check(h.Length, cols, cols, nameof(h));
        fixed (float* px = x) fixed (float* ph = h)
            Multiply(new(px, 1, cols), new(px, cols, 1), ph, cols, cols, cols, rows, alpha, true, Fill.Symmetric);
    }

    /// <summary>Most worker tasks a product may use; the benchmarks set 1 to measure one core.</summary>
    internal static int MaxDegreeOfParallelism { get; set; } = Environment.ProcessorCount;

    /// <summary>Which part of C a product writes.</summary>
    internal enum Fill
    {
        /// <summary>Every element.</summary>
        Full,
        /// <summary>Only C[i,j] with i ≥ j (Cholesky's trailing update).</summary>
        Lower,
        /// <summary>Only i ≤ j is computed; C[i,j] and C[j,i] both receive it (C = XᵀX style products).</summary>
        Symmetric,
        /// <summary>Only C[i,j] with i ≤ j: a region's scratch while it computes a <see cref="Symmetric"/> product.</summary>
        Upper,
    }

    /// <summary>Known triangular structure of the operands (A is m×k, B is k×n), so that all-zero blocks are skipped:
    /// products with triangular factors then cost about half.</summary>
    [Flags]
    internal enum Zeros
    {
        None = 0,
        /// <summary>A(i, p) = 0 for p &gt; i.</summary>
        ALower = 1,
        /// <summary>A(i, p) = 0 for p &lt; i.</summary>
        AUpper = 2,
        /// <summary>B(p, j) = 0 for p &lt; j.</summary>
        BLower = 4,
        /// <summary>B(p, j) = 0 for p &gt; j.</summary>
        BUpper = 8,
    }

    /// <summary>A strided view of a matrix operand: element (i, p) sits at <c>P[i·RowStride + p·ColStride]</c>.
    /// Transposes cost nothing: swap the strides.</summary>
    internal readonly unsafe struct Operand(float* p, int rowStride, int colStride)
    {
        public readonly float* P = p;
        public readonly int RowStride = rowStride, ColStride = colStride;
    }

    // Blocking. KC×NR of B (32 KiB) stays in L1 while the MC×KC block of A (256 KiB) is in L2.
    internal const int MR = 8, NR = 32, KC = 256, MC = 256, NC = 1024;

    /// <summary>Below this many multiply-adds a product runs on the calling thread.</summary>
    const long ParallelThreshold = 1L << 21;

    /// <summary>C[m×n] (with row stride ldc) = (accumulate ? C : 0) + alpha·A·B over the parts of C that <paramref name="fill"/>
    /// names. The core every public product and the Cholesky routines go through.</summary>
    internal static unsafe void Multiply(Operand a, Operand b, float* c, int ldc, int m, int n, int k, float alpha, bool accumulate, Fill fill,
        Zeros zeros = Zeros.None)
    {
        if (m <= 0 || n <= 0) return;
        if (zeros != Zeros.None && !accumulate)
        {
            // Skipped all-zero blocks write nothing, so C starts from zero rather than from the first block.
            ClearRegion(c, ldc, 0, m, 0, n, fill);
            accumulate = true;
        }
        if (k <= 0)
        {
            if (!accumulate) ClearRegion(c, ldc, 0, m, 0, n, fill);
            return;
        }

        int threads = Math.Max(1, MaxDegreeOfParallelism);
        bool parallel = threads > 1 && (long)m * n * k >= ParallelThreshold;
        if (!parallel && fill != Fill.Symmetric)
        {
            Region(a, b, c, ldc, 0, m, 0, n, k, alpha, accumulate, fill, zeros);
            return;
        }

        // Cut C into a grid of regions, several per core so uneven regions (triangles, edges) balance out. Symmetric
        // products are cut even on one thread: each region needs scratch its size, kept to at most about 1024².
        int target = parallel ? threads * (fill == Fill.Full && zeros == Zeros.None ? 2 : 8) : 1; // skipped zero blocks make regions uneven too
        if (fill == Fill.Symmetric) target = Math.Max(target, Square((n + 1023) / 1024));
        int mBlocks = Math.Max(1, (int)Math.Round(Math.Sqrt(target * (double)m / n)));
        int nBlocks = Math.Max(1, (target + mBlocks - 1) / mBlocks);
        int mStep = RoundUp((m + mBlocks - 1) / mBlocks, MR), nStep = RoundUp((n + nBlocks - 1) / nBlocks, NR);
        mBlocks = (m + mStep - 1) / mStep; nBlocks = (n + nStep - 1) / nStep;

        var regions = new List<(int I0, int I1, int J0, int J1)>(mBlocks * nBlocks);
        for (int bi = 0; bi < mBlocks; bi++)
            for (int bj = 0; bj < nBlocks; bj++)
            {
                int i0 = bi * mStep, i1 = Math.Min(m, i0 + mStep), j0 = bj * nStep, j1 = Math.Min(n, j0 + nStep);
                if (fill == Fill.Lower && i1 - 1 < j0) continue;       // entirely above the diagonal
                if (fill == Fill.Symmetric && i0 > j1 - 1) continue;  // entirely below the diagonal
                regions.Add((i0, i1, j0, j1));
            }
        if (!parallel)
        {
            foreach (var (i0, i1, j0, j1) in regions) Region(a, b, c, ldc, i0, i1, j0, j1, k, alpha, accumulate, fill, zeros);
            return;
        }
        // Largest first: triangular regions differ in size.
        regions.Sort((x, y) => ((long)(y.I1 - y.I0) * (y.J1 - y.J0)).CompareTo((long)(x.I1 - x.I0) * (x.J1 - x.J0)));

        nint pc = (nint)c;
        Parallel.For(0, regions.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, r =>
        {
            var (i0, i1, j0, j1) = regions[r];
            Region(a, b, (float*)pc, ldc, i0, i1, j0, j1, k, alpha, accumulate, fill, zeros);
        });
    }

    /// <summary>One region of C: rows [i0, i1), columns [j0, j1), on the calling thread.</summary>
    static unsafe void Region(Operand a, Operand b, float* c, int ldc, int i0, int i1, int j0, int j1, int k,
        float alpha, bool accumulate, Fill fill, Zeros zeros)
    {
        if (fill != Fill.Symmetric)
        {
            RegionCore(a, b, c, ldc, i0, i1, j0, j1, k, alpha, accumulate, fill, zeros);
            return;
        }
        // A symmetric product adds each element to two places. Doing that once per KC step would cost a transposed
        // scatter per tile per step, so the region's upper part is computed into scratch and folded in once at the end.
        int w = j1 - j0, h = i1 - i0;
        float[] scratch = ArrayPool<float>.Shared.Rent(h * w);
        try
        {
            fixed (float* s = scratch)
            {
                float* origin = s - ((long)i0 * w + j0); // so that element (i, j) of C lands at origin[i·w + j]
                if (zeros != Zeros.None) new Span<float>(s, h * w).Clear();
                RegionCore(a, b, origin, w, i0, i1, j0, j1, k, alpha, zeros != Zeros.None, Fill.Upper, zeros);
                for (int i = i0; i < i1; i++)
                {
                    int jStart = Math.Max(i, j0);
                    if (jStart >= j1) continue;
                    float* src = s + (long)(i - i0) * w + (jStart - j0);
                    var dst = new Span<float>(c + (long)i * ldc + jStart, j1 - jStart);
                    System.Numerics.Tensors.TensorPrimitives.Add(dst, new ReadOnlySpan<float>(src, j1 - jStart), dst);
                    for (int j = jStart == i ? i + 1 : jStart; j < j1; j++)
                        c[(long)j * ldc + i] += s[(long)(i - i0) * w + (j - j0)];
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per region: never leave it to tier-0 code
    static unsafe void RegionCore(Operand a, Operand b, float* c, int ldc, int i0, int i1, int j0, int j1, int k,
        float alpha, bool accumulate, Fill fill, Zeros zeros)
    {
        // Packed buffers, 64-byte aligned so every micro-panel row is one cache line apart.
        float[] aBuf = ArrayPool<float>.Shared.Rent(MC * KC + 16);
        float[] bBuf = ArrayPool<float>.Shared.Rent(KC * NC + 16);
        float* tile = stackalloc float[MR * NR];
        try
        {
            fixed (float* aRaw = aBuf) fixed (float* bRaw = bBuf)
            {
                float* aPack = Align64(aRaw), bPack = Align64(bRaw);
                for (int jc = j0; jc < j1; jc += NC)
                {
                    int nc = Math.Min(NC, j1 - jc);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        bool add = accumulate || pc > 0;
                        if (IsZero(zeros, i0, i1, jc, jc + nc, pc, pc + kc)) continue;
                        GemmKernels.PackB(b, pc, kc, jc, nc, bPack);
                        for (int ic = i0; ic < i1; ic += MC)
                        {
                            int mc = Math.Min(MC, i1 - ic);
                            if (fill == Fill.Lower && ic + mc - 1 < jc) continue;
                            if (fill == Fill.Upper && ic > jc + nc - 1) continue;
                            if (IsZero(zeros, ic, ic + mc, jc, jc + nc, pc, pc + kc)) continue;
                            GemmKernels.PackA(a, ic, mc, pc, kc, aPack);
                            for (int jr = 0; jr < nc; jr += NR)
                            {
                                int j = jc + jr, nr = Math.Min(NR, nc - jr);
                                float* bPanel = bPack + (long)jr * kc;
                                for (int ir = 0; ir < mc; ir += MR)
                                {
                                    int i = ic + ir, mr = Math.Min(MR, mc - ir);
                                    if (fill == Fill.Lower && i + mr - 1 < j) continue;
                                    if (fill == Fill.Upper && i > j + nr - 1) continue;
                                    if (IsZero(zeros, i, i + mr, j, j + nr, pc, pc + kc)) continue;
                                    float* aPanel = aPack + (long)ir * kc;
                                    if (mr == MR && nr == NR && InFill(fill, i, j))
                                        GemmKernels.MicroKernel(kc, aPanel, bPanel, c + (long)i * ldc + j, ldc, alpha, add);
                                    else
                                    {
                                        GemmKernels.MicroKernel(kc, aPanel, bPanel, tile, NR, 1f, false);
                                        StoreEdgeTile(tile, c, ldc, i, mr, j, nr, alpha, add, fill);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(aBuf);
            ArrayPool<float>.Shared.Return(bBuf);
        }
    }

    /// <summary>Whether A[i0..i1) × depth [p0, p1) or depth [p0, p1) × B[j0..j1) is known to be all zeros, so the block
    /// adds nothing to C[i0..i1, j0..j1).</summary>
    static bool IsZero(Zeros z, int i0, int i1, int j0, int j1, int p0, int p1) =>
        z != Zeros.None && (
            ((z & Zeros.ALower) != 0 && p0 > i1 - 1) ||
            ((z & Zeros.AUpper) != 0 && p1 - 1 < i0) ||
            ((z & Zeros.BLower) != 0 && p1 - 1 < j0) ||
            ((z & Zeros.BUpper) != 0 && p0 > j1 - 1));

    /// <summary>Whether the whole MR×NR tile at (i, j) lies in the part of C that <paramref name="fill"/> writes.</summary>
    static bool InFill(Fill fill, int i, int j) => fill switch
    {
        Fill.Lower => i >= j + NR - 1,
        Fill.Upper => i + MR - 1 <= j,
        _ => true,
    };

    /// <summary>Adds (or writes) alpha·tile into C at (i, j), clipped to mr×nr and to the part <paramref name="fill"/>
    /// allows: tiles on the matrix edge or crossed by the diagonal.</summary>
    static unsafe void StoreEdgeTile(float* tile, float* c, int ldc, int i, int mr, int j, int nr, float alpha, bool add, Fill fill)
    {
        for (int r = 0; r < mr; r++)
        {
            int row = i + r;
            for (int q = 0; q < nr; q++)
            {
                int col = j + q;
                if ((fill == Fill.Lower && row < col) || (fill == Fill.Upper && row > col)) continue;
                float v = alpha * tile[r * NR + q];
                float* e = c + (long)row * ldc + col;
                *e = add ? *e + v : v;
            }
        }
    }

    static unsafe void ClearRegion(float* c, int ldc, int i0, int i1, int j0, int j1, Fill fill)
    {
        for (int i = i0; i < i1; i++)
        {
            int from = j0, to = j1;
            if (fill == Fill.Lower) to = Math.Min(j1, i + 1);
            if (to > from) new Span<float>(c + (long)i * ldc + from, to - from).Clear();
        }
    }

    static unsafe float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    static int Square(int x) => x * x;

    static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    static void Check(int length, int rows, int cols, string name)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(name, $"negative dimension {rows}×{cols}");
        if (length < (long)rows * cols)
            throw new ArgumentException($"{name} holds {length} elements, fewer than {rows}×{cols}", name);
    }
}
