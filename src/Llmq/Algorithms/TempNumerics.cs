// TEMPORARY stand-ins for the numerics helper's Gemm/Cholesky (contract names); deleted when theirs land on main.
namespace Llmq.Algorithms;

internal sealed class TempNotPositiveDefiniteException(string message) : LlmqException(message);

internal static class TempGemm
{
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
    {
        if (!accumulate) c[..(m * n)].Clear();
        for (var i = 0; i < m; i++)
        {
            var ci = c.Slice(i * n, n);
            for (var p = 0; p < k; p++)
            {
                var aip = a[i * k + p];
                if (aip == 0) continue;
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(b.Slice(p * n, n), aip, ci, ci);
            }
        }
    }

    public static void MatMulTransposeB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false)
    {
        for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                var d = System.Numerics.Tensors.TensorPrimitives.Dot(a.Slice(i * k, k), b.Slice(j * k, k));
                c[i * n + j] = accumulate ? c[i * n + j] + d : d;
            }
    }

    public static void AddXtX(ReadOnlySpan<float> x, int rows, int cols, Span<float> h, float alpha = 1f)
    {
        var xt = new float[rows * cols];
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < cols; c++)
                xt[c * rows + r] = x[r * cols + c];
        for (var i = 0; i < cols; i++)
            for (var j = i; j < cols; j++)
            {
                var d = alpha * System.Numerics.Tensors.TensorPrimitives.Dot<float>(xt.AsSpan(i * rows, rows), xt.AsSpan(j * rows, rows));
                h[i * cols + j] += d;
                if (i != j) h[j * cols + i] += d;
            }
    }
}

internal static class TempCholesky
{
    public static void UpperCholeskyOfInverse(Span<float> h, int n)
    {
        var a = new double[n * n];
        for (var i = 0; i < n * n; i++) a[i] = h[i];
        FactorD(a, n);
        // invert lower L in place
        var inv = new double[n * n];
        for (var j = 0; j < n; j++)
        {
            inv[j * n + j] = 1 / a[j * n + j];
            for (var i = j + 1; i < n; i++)
            {
                double s = 0;
                for (var p = j; p < i; p++) s += a[i * n + p] * inv[p * n + j];
                inv[i * n + j] = -s / a[i * n + i];
            }
        }
        // Hinv = inv^T inv
        var hinv = new double[n * n];
        for (var i = 0; i < n; i++)
            for (var j = i; j < n; j++)
            {
                double s = 0;
                for (var p = j; p < n; p++) s += inv[p * n + i] * inv[p * n + j];
                hinv[i * n + j] = s; hinv[j * n + i] = s;
            }
        FactorD(hinv, n);
        for (var i = 0; i < n; i++)
            for (var j = 0; j < n; j++)
                h[i * n + j] = j >= i ? (float)hinv[j * n + i] : 0f;
    }

    static void FactorD(double[] a, int n)
    {
        for (var j = 0; j < n; j++)
        {
            var d = a[j * n + j];
            for (var p = 0; p < j; p++) d -= a[j * n + p] * a[j * n + p];
            if (!(d > 0)) throw new TempNotPositiveDefiniteException($"not positive definite at {j}");
            d = Math.Sqrt(d);
            a[j * n + j] = d;
            for (var i = j + 1; i < n; i++)
            {
                var s = a[i * n + j];
                for (var p = 0; p < j; p++) s -= a[i * n + p] * a[j * n + p];
                a[i * n + j] = s / d;
            }
        }
        for (var i = 0; i < n; i++) for (var j = i + 1; j < n; j++) a[i * n + j] = 0;
    }
}
