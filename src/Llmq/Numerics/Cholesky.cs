using System.Buffers;
using System.Numerics.Tensors;
using static Llmq.Numerics.Gemm;

namespace Llmq.Numerics;

/// <summary>The factorization failed: the matrix is not (numerically) symmetric positive definite.
/// GPTQ users meet this when a Hessian is singular; more dampening fixes it.</summary>
public sealed class NotPositiveDefiniteException : LlmqException
{
    /// <summary>Row/column (0-based, in the caller's indexing) whose pivot was not positive.</summary>
    public int Pivot { get; }

    /// <summary>The pivot's value (what would have been the square of L's diagonal element).</summary>
    public double Value { get; }

    public NotPositiveDefiniteException(int pivot, double value)
        : base($"matrix is not positive definite: pivot {pivot} is {value:G6} (a singular Hessian needs more dampening)")
    {
        Pivot = pivot;
        Value = value;
    }
}

/// <summary>Cholesky factorization and the inverses built on it, for dense row-major float32 matrices up to
/// n = 16,384. All are recursive (split in halves down to <see cref="Base"/>) so that nearly every flop is a
/// <see cref="Gemm"/> call and runs vectorized on all cores.</summary>
public static class Cholesky
{
    /// <summary>Blocks at or below this size use the unblocked loops.</summary>
    const int Base = 32;

    /// <summary>A = L·Lᵀ: overwrites the lower triangle of <paramref name="a"/> with L and zeroes the strict upper
    /// triangle. Reads only the lower triangle. Throws <see cref="NotPositiveDefiniteException"/> naming the pivot.</summary>
    public static unsafe void Factor(Span<float> a, int n)
    {
        Check(a.Length, n);
        fixed (float* p = a)
        {
            FactorCore(p, n, n, 0);
            ZeroStrictUpper(p, n);
        }
    }

    /// <summary>Replaces lower-triangular L (strict upper ignored) with L⁻¹, strict upper zeroed.</summary>
    public static unsafe void InvertLower(Span<float> l, int n)
    {
        Check(l.Length, n);
        fixed (float* p = l)
        {
            ZeroStrictUpper(p, n);
            InvertLowerCore(p, n, n);
        }
    }

    /// <summary>Replaces symmetric positive definite A (lower triangle read) with the full symmetric A⁻¹ = L⁻ᵀ·L⁻¹.</summary>
    public static unsafe void InvertSpd(Span<float> a, int n)
    {
        Factor(a, n);
        float[] x = GC.AllocateUninitializedArray<float>(n * n);
        fixed (float* pa = a) fixed (float* px = x)
        {
            InvertLowerCore(pa, n, n);
            new Span<float>(pa, n * n).CopyTo(x);
            new Span<float>(pa, n * n).Clear();
            // X = L⁻¹; A⁻¹ = XᵀX, a symmetric product.
            Multiply(new(px, 1, n), new(px, n, 1), pa, n, n, n, n, 1f, true, Fill.Symmetric, Zeros.AUpper | Zeros.BLower);
        }
    }

    /// <summary>Replaces SPD H with the upper-triangular U for which H⁻¹ = UᵀU (strict lower zeroed) — what GPTQ uses,
    /// i.e. torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).
    /// <para>With J the reversal permutation, JHJ = L′L′ᵀ gives H = (JL′J)(JL′J)ᵀ with JL′J upper, so
    /// H⁻¹ = UᵀU for U = (JL′J)⁻¹ = J·L′⁻¹·J. Reversing a row-major square in both axes is reversing the whole array,
    /// so the cost is one factorization and one triangular inverse, without ever forming H⁻¹.</para></summary>
    public static void UpperCholeskyOfInverse(Span<float> h, int n)
    {
        Check(h.Length, n);
        var m = h[..(n * n)];
        m.Reverse();
        try
        {
            Factor(m, n);
        }
        catch (NotPositiveDefiniteException e)
        {
            m.Reverse();
            throw new NotPositiveDefiniteException(n - 1 - e.Pivot, e.Value);
        }
        InvertLower(m, n);
        m.Reverse();
    }

    /// <summary>Lower Cholesky of the n×n block at <paramref name="a"/> (row stride lda); <paramref name="offset"/> is the
    /// block's position in the whole matrix, for error messages.</summary>
    static unsafe void FactorCore(float* a, int lda, int n, int offset)
    {
        if (n <= Base)
        {
            FactorUnblocked(a, lda, n, offset);
            return;
        }
        int n1 = Split(n), n2 = n - n1;
        float* a21 = a + (long)n1 * lda, a22 = a21 + n1;
        FactorCore(a, lda, n1, offset);
        SolveTransposedLower(a, lda, n1, a21, lda, n2);                                          // L21 = A21·L11⁻ᵀ
        Multiply(new(a21, lda, 1), new(a21, 1, lda), a22, lda, n2, n2, n1, -1f, true, Fill.Lower); // A22 −= L21·L21ᵀ
        FactorCore(a22, lda, n2, offset + n1);
    }

    static unsafe void FactorUnblocked(float* a, int lda, int n, int offset)
    {
        for (int j = 0; j < n; j++)
        {
            float* rowJ = a + (long)j * lda;
            var lj = new ReadOnlySpan<float>(rowJ, j);
            float d = rowJ[j] - TensorPrimitives.Dot(lj, lj);
            if (!(d > 0) || !float.IsFinite(d)) throw new NotPositiveDefiniteException(offset + j, d);
            float ljj = MathF.Sqrt(d);
            rowJ[j] = ljj;
            for (int i = j + 1; i < n; i++)
            {
                float* rowI = a + (long)i * lda;
                rowI[j] = (rowI[j] - TensorPrimitives.Dot(new ReadOnlySpan<float>(rowI, j), lj)) / ljj;
            }
        }
    }

    /// <summary>Solves X·Lᵀ = B in place (B at <paramref name="x"/>, m×nb, row stride ldx) for lower L (nb×nb at l).</summary>
    static unsafe void SolveTransposedLower(float* l, int ldl, int nb, float* x, int ldx, int m)
    {
        if (nb <= Base)
        {
            SolveTransposedLowerBase(l, ldl, nb, x, ldx, m);
            return;
        }
        int n1 = Split(nb), n2 = nb - n1;
        SolveTransposedLower(l, ldl, n1, x, ldx, m);
        Multiply(new(x, ldx, 1), new(l + (long)n1 * ldl, 1, ldl), x + n1, ldx, m, n2, n1, -1f, true, Fill.Full); // X2 −= X1·L21ᵀ
        SolveTransposedLower(l + (long)n1 * ldl + n1, ldl, n2, x + n1, ldx, m);
    }

    /// <summary>A small block: invert L (≤ Base², well-conditioned pieces of an SPD factor) and multiply, X = B·L⁻ᵀ,
    /// so the m rows go through the GEMM instead of m scalar substitutions.</summary>
    static unsafe void SolveTransposedLowerBase(float* l, int ldl, int nb, float* x, int ldx, int m)
    {
        float* inv = stackalloc float[Base * Base];
        new Span<float>(inv, nb * nb).Clear();
        for (int i = 0; i < nb; i++)
            new ReadOnlySpan<float>(l + (long)i * ldl, i + 1).CopyTo(new Span<float>(inv + i * nb, i + 1));
        InvertLowerUnblocked(inv, nb, nb);

        float[] copy = ArrayPool<float>.Shared.Rent(m * nb);
        try
        {
            fixed (float* b = copy)
            {
                for (int i = 0; i < m; i++)
                    new ReadOnlySpan<float>(x + (long)i * ldx, nb).CopyTo(new Span<float>(b + (long)i * nb, nb));
                Multiply(new(b, nb, 1), new(inv, 1, nb), x, ldx, m, nb, nb, 1f, false, Fill.Full);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(copy);
        }
    }

    /// <summary>In-place inverse of the n×n lower block at l (row stride ld) whose strict upper part is zero.
    /// [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; −L22⁻¹·L21·L11⁻¹ L22⁻¹].</summary>
    static unsafe void InvertLowerCore(float* l, int ld, int n)
    {
        if (n <= Base)
        {
            InvertLowerUnblocked(l, ld, n);
            return;
        }
        int n1 = Split(n), n2 = n - n1;
        float* l21 = l + (long)n1 * ld, l22 = l21 + n1;
        InvertLowerCore(l, ld, n1);
        InvertLowerCore(l22, ld, n2);
        float[] tBuf = ArrayPool<float>.Shared.Rent(n2 * n1);
        try
        {
            fixed (float* t = tBuf)
            {
                Multiply(new(l21, ld, 1), new(l, ld, 1), t, n1, n2, n1, n1, 1f, false, Fill.Full, Zeros.BLower);    // T = L21·L11⁻¹
                Multiply(new(l22, ld, 1), new(t, n1, 1), l21, ld, n2, n1, n2, -1f, false, Fill.Full, Zeros.ALower); // L21 ← −L22⁻¹·T
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(tBuf);
        }
    }

    static unsafe void InvertLowerUnblocked(float* l, int ld, int n)
    {
        float* row = stackalloc float[Base];
        for (int i = 0; i < n; i++)
        {
            float* li = l + (long)i * ld;
            float d = li[i];
            if (d == 0 || !float.IsFinite(d))
                throw new LlmqException($"triangular matrix is singular: diagonal element {i} is {d}");
            new ReadOnlySpan<float>(li, i).CopyTo(new Span<float>(row, i));
            float invD = 1f / d;
            // Row i of L⁻¹ from rows 0..i−1 already inverted: X[i,j] = −(Σ_{p=j}^{i−1} L[i,p]·X[p,j]) / L[i,i].
            for (int j = 0; j < i; j++)
            {
                float s = 0;
                for (int p = j; p < i; p++) s += row[p] * l[(long)p * ld + j];
                li[j] = -s * invD;
            }
            li[i] = invD;
        }
    }

    /// <summary>First half of a split, a multiple of Base so the blocks below stay aligned to the GEMM tiles.</summary>
    static int Split(int n) => Math.Min(n - 1, (n / 2 + Base - 1) / Base * Base);

    static unsafe void ZeroStrictUpper(float* a, int n)
    {
        for (int i = 0; i < n - 1; i++)
            new Span<float>(a + (long)i * n + i + 1, n - 1 - i).Clear();
    }

    static void Check(int length, int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (length < (long)n * n) throw new ArgumentException($"matrix holds {length} elements, fewer than {n}×{n}");
    }
}
