using System.Runtime.InteropServices;
using Llmq.Formats.Gguf;

namespace Llmq.Tests.Formats.Gguf;

/// <summary>Byte-for-byte agreement with llama.cpp's own quantizers. Vectors/ggml_blocks.bin was produced by
/// Vectors/gen_block_vectors.c calling ggml_quantize_chunk and dequantize_row_* of a released libggml-base.so on six
/// 6×512 rows chosen to reach the corner cases (zeros, sub-GROUP_MAX_EPS blocks, outliers, ramps, constant blocks).</summary>
public class GgmlBlockVectorTests
{
    sealed record Case(GgmlType Type, bool WithImatrix, byte[] Bytes, float[]? Dequantized);
    sealed record Vectors(int Rows, int Cols, float[] Input, float[] Imatrix, List<Case> Cases);

    static readonly Lazy<Vectors> Data = new(Load);

    static Vectors Load()
    {
        using var r = new BinaryReader(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "Formats", "Gguf", "Vectors", "ggml_blocks.bin")));
        Assert.Equal(0x3156514cu, r.ReadUInt32());
        int rows = r.ReadInt32(), cols = r.ReadInt32();
        var input = ReadFloats(r, rows * cols);
        var imatrix = ReadFloats(r, cols);
        int n = r.ReadInt32();
        var cases = new List<Case>();
        for (int i = 0; i < n; i++)
        {
            var type = (GgmlType)r.ReadUInt32();
            bool w = r.ReadUInt32() != 0;
            int length = r.ReadInt32();
            bool hasDequantized = r.ReadUInt32() != 0;
            var bytes = r.ReadBytes(length);
            var deq = hasDequantized ? ReadFloats(r, rows * cols) : null;
            cases.Add(new Case(type, w, bytes, deq));
        }
        return new Vectors(rows, cols, input, imatrix, cases);
    }

    static float[] ReadFloats(BinaryReader r, int n) => MemoryMarshal.Cast<byte, float>(r.ReadBytes(n * 4)).ToArray();

    public static TheoryData<string, bool> AllCases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var t in new[] { "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16" })
        {
            data.Add(t, false);
            data.Add(t, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void QuantizeMatchesLlamaCpp(string typeName, bool withImatrix)
    {
        var v = Data.Value;
        var type = Enum.Parse<GgmlType>(typeName);
        var expected = v.Cases.Single(c => c.Type == type && c.WithImatrix == withImatrix).Bytes;
        var actual = new byte[expected.Length];
        GgmlQuants.QuantizeRows(type, v.Input, actual, v.Cols, withImatrix ? v.Imatrix : default);
        AssertSameBlocks(type, v.Cols, expected, actual);
    }

    [Theory]
    [InlineData("Q4_0"), InlineData("Q4_1"), InlineData("Q5_0"), InlineData("Q5_1"), InlineData("Q8_0")]
    [InlineData("Q2_K"), InlineData("Q3_K"), InlineData("Q4_K"), InlineData("Q5_K"), InlineData("Q6_K")]
    public void DequantizeMatchesLlamaCpp(string typeName)
    {
        var v = Data.Value;
        var type = Enum.Parse<GgmlType>(typeName);
        var c = v.Cases.Single(c => c.Type == type && !c.WithImatrix);
        var actual = new float[v.Rows * v.Cols];
        GgmlQuants.DequantizeRows(type, c.Bytes, actual, v.Cols);
        for (int i = 0; i < actual.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(c.Dequantized![i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{typeName} element {i} (row {i / v.Cols}): ggml {c.Dequantized[i]:R}, ours {actual[i]:R}");
    }

    /// <summary>Fails naming the first differing block (row, block, byte) so a mismatch can be traced to one search.</summary>
    static void AssertSameBlocks(GgmlType type, int cols, byte[] expected, byte[] actual)
    {
        int blockBytes = GgmlTypes.TypeSize(type), blocksPerRow = cols / GgmlTypes.BlockSize(type);
        int bad = 0;
        string? first = null;
        for (int b = 0; b < expected.Length / blockBytes; b++)
        {
            var e = expected.AsSpan(b * blockBytes, blockBytes);
            var a = actual.AsSpan(b * blockBytes, blockBytes);
            if (e.SequenceEqual(a)) continue;
            bad++;
            if (first is null)
            {
                int k = 0;
                while (e[k] == a[k]) k++;
                first = $"row {b / blocksPerRow} block {b % blocksPerRow} byte {k}: ggml {Convert.ToHexString(e)} ours {Convert.ToHexString(a)}";
            }
        }
        Assert.True(bad == 0, $"{type}: {bad} of {expected.Length / blockBytes} blocks differ; first at {first}");
    }
}
