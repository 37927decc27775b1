using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class CholeskyTests
{
    // 1 and 7 stay in the unblocked loops; 33, 100 and 300 recurse (300 puts its trailing updates on the parallel path).
    public static TheoryData<int> Sizes => [1, 7, 33, 100, 300];

    [Theory, MemberData(nameof(Sizes))]
    public void FactorReconstructsA(int n)
    {
        var a = Spd(n, 1);
        var l = (float[])a.Clone();
        Cholesky.Factor(l, n);
        for (int i = 0; i < n; i++)
        {
            Assert.True(l[i * n + i] > 0);
            for (int j = i + 1; j < n; j++) Assert.Equal(0f, l[i * n + j]);
        }
        var llt = new float[n * n];
        Gemm.MatMulTransposeB(l, l, llt, n, n, n);
        AssertClose(a, llt, 1e-5f * n);
    }

    [Theory, MemberData(nameof(Sizes))]
    public void InvertLowerGivesTheInverse(int n)
    {
        var l = Spd(n, 2);
        Cholesky.Factor(l, n);
        var inv = (float[])l.Clone();
        Cholesky.InvertLower(inv, n);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) Assert.Equal(0f, inv[i * n + j]);
        var product = new float[n * n];
        Gemm.MatMul(l, inv, product, n, n, n);
        AssertClose(Identity(n), product, 1e-5f * n);
    }

    [Theory, MemberData(nameof(Sizes))]
    public void InvertSpdGivesTheSymmetricInverse(int n)
    {
        var a = Spd(n, 3);
        var inv = (float[])a.Clone();
        Cholesky.InvertSpd(inv, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) Assert.Equal(inv[j * n + i], inv[i * n + j]);
        var product = new float[n * n];
        Gemm.MatMul(a, inv, product, n, n, n);
        AssertClose(Identity(n), product, 1e-5f * n);
    }

    [Theory, MemberData(nameof(Sizes))]
    public void UpperCholeskyOfInverseFactorsTheInverse(int n)
    {
        var a = Spd(n, 4);
        var u = (float[])a.Clone();
        Cholesky.UpperCholeskyOfInverse(u, n);
        for (int i = 0; i < n; i++)
        {
            Assert.True(u[i * n + i] > 0);
            for (int j = 0; j < i; j++) Assert.Equal(0f, u[i * n + j]);
        }
        // A·(UᵀU) = I
        var utu = new float[n * n];
        var ut = Transpose(u, n);
        Gemm.MatMulTransposeB(ut, ut, utu, n, n, n);
        var product = new float[n * n];
        Gemm.MatMul(a, utu, product, n, n, n);
        AssertClose(Identity(n), product, 1e-5f * n);
    }

    [Fact]
    public void UpperCholeskyOfInverseMatchesTheDefinitionOn2x2()
    {
        // H = [4 2; 2 3]: H⁻¹ = [3 −2; −2 4]/8; its lower Cholesky L has L00 = √(3/8), L10 = −(2/8)/L00,
        // L11 = √(4/8 − L10²); torch's upper factor is U = Lᵀ.
        float[] h = [4, 2, 2, 3];
        Cholesky.UpperCholeskyOfInverse(h, 2);
        double l00 = Math.Sqrt(3.0 / 8), l10 = -0.25 / l00, l11 = Math.Sqrt(0.5 - l10 * l10);
        Assert.Equal(l00, h[0], 1e-6);
        Assert.Equal(l10, h[1], 1e-6);
        Assert.Equal(0f, h[2]);
        Assert.Equal(l11, h[3], 1e-6);
    }

    [Theory]
    [InlineData(10, 5)]
    [InlineData(100, 70)]
    public void NotPositiveDefiniteNamesThePivot(int n, int pivot)
    {
        var a = Identity(n);
        a[pivot * n + pivot] = -1;
        var e = Assert.Throws<NotPositiveDefiniteException>(() => Cholesky.Factor((float[])a.Clone(), n));
        Assert.Equal(pivot, e.Pivot);
        Assert.Contains($"pivot {pivot}", e.Message);
        e = Assert.Throws<NotPositiveDefiniteException>(() => Cholesky.UpperCholeskyOfInverse((float[])a.Clone(), n));
        Assert.Equal(pivot, e.Pivot);
        Assert.IsAssignableFrom<LlmqException>(e);
    }

    [Fact]
    public void SingularMatrixIsRejected()
    {
        const int n = 50, rank = 10;
        var b = GemmTests.Random(n * rank, 5);
        var a = new float[n * n];
        Gemm.MatMulTransposeB(b, b, a, n, n, rank);
        Assert.Throws<NotPositiveDefiniteException>(() => Cholesky.Factor(a, n));
    }

    /// <summary>B·Bᵀ/n + I: symmetric positive definite with condition number of a few.</summary>
    static float[] Spd(int n, int seed)
    {
        var b = GemmTests.Random(n * n, seed);
        var a = new float[n * n];
        Gemm.Reference.MatMulTransposeB(b, b, a, n, n, n);
        for (int i = 0; i < n * n; i++) a[i] /= n;
        for (int i = 0; i < n; i++) a[i * n + i] += 1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) a[i * n + j] = a[j * n + i];
        return a;
    }

    static float[] Identity(int n)
    {
        var a = new float[n * n];
        for (int i = 0; i < n; i++) a[i * n + i] = 1;
        return a;
    }

    static float[] Transpose(float[] a, int n)
    {
        var t = new float[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
        return t;
    }

    static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance))
                Assert.Fail($"element {i}: expected {expected[i]}, got {actual[i]} (tolerance {tolerance})");
    }
}
