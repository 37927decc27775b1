using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

public class GemmTests
{
    // Odd sizes around the tile edges (MR = 8, NR = 32, KC = 256, MC = 256, NC = 1024) plus one product large enough
    // to take the parallel path.
    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 7, 17, 33 }, { 17, 7, 100 }, { 33, 100, 7 }, { 100, 33, 257 }, { 9, 40, 300 },
        { 257, 65, 31 }, { 3, 1100, 5 }, { 150, 130, 120 },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void MatMulTransposeBMatchesReference(int m, int n, int k)
    {
        var a = Random(m * k, 1); var b = Random(n * k, 2);
        var expected = new float[m * n]; var actual = Filled(m * n, float.NaN); // NaN: must be overwritten, not read
        Gemm.Reference.MatMulTransposeB(a, b, expected, m, n, k);
        Gemm.MatMulTransposeB(a, b, actual, m, n, k);
        AssertClose(expected, actual, k);
    }

    [Theory, MemberData(nameof(Shapes))]
    public void MatMulMatchesReference(int m, int n, int k)
    {
        var a = Random(m * k, 3); var b = Random(k * n, 4);
        var expected = new float[m * n]; var actual = Filled(m * n, float.NaN);
        Gemm.Reference.MatMul(a, b, expected, m, n, k);
        Gemm.MatMul(a, b, actual, m, n, k);
        AssertClose(expected, actual, k);
    }

    [Theory]
    [InlineData(33, 65, 17)]
    [InlineData(150, 130, 300)]
    public void AccumulateAddsToC(int m, int n, int k)
    {
        var a = Random(m * k, 5); var b = Random(n * k, 6); var c0 = Random(m * n, 7);
        var expected = (float[])c0.Clone(); var actual = (float[])c0.Clone();
        Gemm.Reference.MatMulTransposeB(a, b, expected, m, n, k, accumulate: true);
        Gemm.MatMulTransposeB(a, b, actual, m, n, k, accumulate: true);
        AssertClose(expected, actual, k);

        expected = (float[])c0.Clone(); actual = (float[])c0.Clone();
        Gemm.Reference.MatMul(a, b, expected, m, n, k, accumulate: true);
        Gemm.MatMul(a, b, actual, m, n, k, accumulate: true);
        AssertClose(expected, actual, k);
    }

    [Fact]
    public void EmptyDepthClearsOrKeepsC()
    {
        var c = Filled(6, 5f);
        Gemm.MatMulTransposeB([], [], c, 2, 3, 0, accumulate: true);
        Assert.All(c, v => Assert.Equal(5f, v));
        Gemm.MatMulTransposeB([], [], c, 2, 3, 0);
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ExactOnSmallIntegers()
    {
        // [1 2; 3 4]·[5 6; 7 8]ᵀ = [17 23; 39 53]
        var c = new float[4];
        Gemm.MatMulTransposeB([1, 2, 3, 4], [5, 6, 7, 8], c, 2, 2, 2);
        Assert.Equal([17f, 23f, 39f, 53f], c);
        Gemm.MatMul([1, 2, 3, 4], [5, 6, 7, 8], c, 2, 2, 2);
        Assert.Equal([19f, 22f, 43f, 50f], c);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 17)]
    [InlineData(100, 33)]
    [InlineData(300, 70)]
    [InlineData(100, 260)]
    [InlineData(1, 1100)] // several symmetric regions on one thread
    [InlineData(3, 1100)]
    public void AddXtXMatchesReferenceAndStaysSymmetric(int rows, int cols)
    {
        var x = Random(rows * cols, 8);
        var h0 = Random(cols * cols, 9);
        for (int i = 0; i < cols; i++)          // symmetric start
            for (int j = 0; j < i; j++) h0[i * cols + j] = h0[j * cols + i];
        var expected = (float[])h0.Clone(); var actual = (float[])h0.Clone();
        Gemm.Reference.AddXtX(x, rows, cols, expected, 0.5f);
        Gemm.AddXtX(x, rows, cols, actual, 0.5f);
        AssertClose(expected, actual, rows);
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < i; j++) Assert.Equal(actual[j * cols + i], actual[i * cols + j]);
    }

    [Fact]
    public void AddXtXAddsToBothTrianglesOfAnAsymmetricH()
    {
        const int rows = 40, cols = 50;
        var x = Random(rows * cols, 10); var h0 = Random(cols * cols, 11);
        var expected = (float[])h0.Clone(); var actual = (float[])h0.Clone();
        Gemm.Reference.AddXtX(x, rows, cols, expected);
        Gemm.AddXtX(x, rows, cols, actual);
        AssertClose(expected, actual, rows);
    }

    [Fact]
    public void ShortSpansAreRejected()
    {
        Assert.Throws<ArgumentException>(() => Gemm.MatMulTransposeB(new float[5], new float[6], new float[4], 2, 2, 3));
        Assert.Throws<ArgumentException>(() => Gemm.AddXtX(new float[6], 2, 3, new float[8]));
    }

    internal static float[] Random(int count, int seed)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    static float[] Filled(int count, float value)
    {
        var v = new float[count];
        Array.Fill(v, value);
        return v;
    }

    /// <summary>Float32 sums of k products of values in [−1, 1]: the error grows at worst like k·ε.</summary>
    static void AssertClose(float[] expected, float[] actual, int k)
    {
        float tolerance = 1e-6f * (k + 4);
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance))
                Assert.Fail($"element {i}: expected {expected[i]}, got {actual[i]} (tolerance {tolerance})");
    }
}
