namespace Llmq.Numerics;

public static partial class Gemm
{
    /// <summary>Plain triple loops with the same contracts as the fast products: the algorithmic reference the tests
    /// compare against. Accumulates in double so it is the more accurate of the two.</summary>
    public static class Reference
    {
        /// <summary>C[m×n] (+)= A[m×k]·B[n×k]ᵀ.</summary>
        public static void MatMulTransposeB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
        {
            Check(a.Length, m, k, nameof(a)); Check(b.Length, n, k, nameof(b)); Check(c.Length, m, n, nameof(c));
            Product(a, b, 1, k, c, m, n, k, accumulate);
        }

        /// <summary>C[m×n] (+)= A[m×k]·B[k×n].</summary>
        public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
        {
            Check(a.Length, m, k, nameof(a)); Check(b.Length, k, n, nameof(b)); Check(c.Length, m, n, nameof(c));
            Product(a, b, n, 1, c, m, n, k, accumulate);
        }

        /// <summary>B's element (p, j) at b[p·rsB + j·csB].</summary>
        static void Product(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int rsB, int csB, Span<float> c, int m, int n, int k, bool accumulate)
        {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = accumulate ? c[i * n + j] : 0;
                    for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * rsB + j * csB];
                    c[i * n + j] = (float)s;
                }
        }

        /// <summary>H[cols×cols] += alpha·XᵀX.</summary>
        public static void AddXtX(ReadOnlySpan<float> x, int rows, int cols, Span<float> h, float alpha = 1f)
        {
            Check(x.Length, rows, cols, nameof(x)); Check(h.Length, cols, cols, nameof(h));
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < cols; j++)
                {
                    double s = 0;
                    for (int p = 0; p < rows; p++) s += (double)x[p * cols + i] * x[p * cols + j];
                    h[i * cols + j] += (float)(alpha * s);
                }
        }
    }
}
