namespace Llmq.Numerics;

/// <summary>
/// compressed-tensors <c>pack-quantized</c> bit packing of signed b-bit integers (1 ≤ b ≤ 8) into int32 words.
/// Each value is offset to unsigned (<c>u = q + 2^(b−1)</c>) and the values form an LSB-first bit stream: element j occupies
/// stream bits [j·b, j·b + b), word k holds stream bits [32k, 32k + 32). For b ∈ {3,5,6,7} elements straddle words (CT ≥ 0.18
/// "dense" layout); for 1/2/4/8 they never do. A stream of n values takes ceil(n·b/32) words.
/// </summary>
public static class IntPacking
{
    public static int WordCount(long count, int bits) => checked((int)((count * bits + 31) / 32));

    /// <summary>Packs <paramref name="values"/> (each in [−2^(b−1), 2^(b−1)−1]) into <paramref name="words"/>; unused high bits are zero.</summary>
    public static void Pack(ReadOnlySpan<sbyte> values, int bits, Span<int> words)
    {
        CheckBits(bits);
        int n = WordCount(values.Length, bits);
        if (words.Length < n) throw new ArgumentException("destination too short", nameof(words));
        int offset = 1 << (bits - 1);
        if (bits == 4 && values.Length % 8 == 0)
        {
            // Fast path for the common case: 8 nibbles per word.
            for (int k = 0; k < values.Length / 8; k++)
            {
                var v = values.Slice(8 * k, 8);
                uint w = 0;
                for (int i = 0; i < 8; i++)
                    w |= (uint)((v[i] + 8) & 0xF) << (4 * i);
                words[k] = (int)w;
            }
            return;
        }
        ulong acc = 0;
        int filled = 0, word = 0;
        uint mask = (1u << bits) - 1;
        for (int j = 0; j < values.Length; j++)
        {
            acc |= (ulong)((uint)(values[j] + offset) & mask) << filled;
            filled += bits;
            if (filled >= 32)
            {
                words[word++] = (int)(uint)acc;
                acc >>= 32;
                filled -= 32;
            }
        }
        if (filled > 0) words[word++] = (int)(uint)acc;
    }

    /// <summary>Inverse of <see cref="Pack"/>: reads <paramref name="values"/>.Length signed values.</summary>
    public static void Unpack(ReadOnlySpan<int> words, int bits, Span<sbyte> values)
    {
        CheckBits(bits);
        if (words.Length < WordCount(values.Length, bits)) throw new ArgumentException("too few words", nameof(words));
        int offset = 1 << (bits - 1);
        ulong mask = (1ul << bits) - 1;
        for (int j = 0; j < values.Length; j++)
        {
            long bit = (long)j * bits;
            int k = (int)(bit >> 5), s = (int)(bit & 31);
            ulong w = (uint)words[k];
            if (s + bits > 32) w |= (ulong)(uint)words[k + 1] << 32;
            values[j] = (sbyte)((int)((w >> s) & mask) - offset);
        }
    }

    /// <summary>
    /// Packs a [rows, cols] matrix of signed values along dim 0 (down each column), as compressed-tensors packs zero points:
    /// the result is [ceil(rows·b/32), cols] row-major.
    /// </summary>
    public static void PackColumns(ReadOnlySpan<sbyte> values, int rows, int cols, int bits, Span<int> words)
    {
        int packedRows = WordCount(rows, bits);
        if (values.Length != rows * cols) throw new ArgumentException("values must be rows × cols", nameof(values));
        if (words.Length < packedRows * cols) throw new ArgumentException("destination too short", nameof(words));
        Span<sbyte> column = rows <= 4096 ? stackalloc sbyte[rows] : new sbyte[rows];
        Span<int> packed = packedRows <= 1024 ? stackalloc int[packedRows] : new int[packedRows];
        for (int c = 0; c < cols; c++)
        {
            for (int r = 0; r < rows; r++) column[r] = values[r * cols + c];
            Pack(column, bits, packed);
            for (int k = 0; k < packedRows; k++) words[k * cols + c] = packed[k];
        }
    }

    /// <summary>Inverse of <see cref="PackColumns"/>.</summary>
    public static void UnpackColumns(ReadOnlySpan<int> words, int rows, int cols, int bits, Span<sbyte> values)
    {
        int packedRows = WordCount(rows, bits);
        if (words.Length < packedRows * cols) throw new ArgumentException("too few words", nameof(words));
        Span<sbyte> column = rows <= 4096 ? stackalloc sbyte[rows] : new sbyte[rows];
        Span<int> packed = packedRows <= 1024 ? stackalloc int[packedRows] : new int[packedRows];
        for (int c = 0; c < cols; c++)
        {
            for (int k = 0; k < packedRows; k++) packed[k] = words[k * cols + c];
            Unpack(packed, bits, column);
            for (int r = 0; r < rows; r++) values[r * cols + c] = column[r];
        }
    }

    static void CheckBits(int bits)
    {
        if (bits is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(bits), bits, "pack-quantized supports 1 to 8 bits");
    }
}
