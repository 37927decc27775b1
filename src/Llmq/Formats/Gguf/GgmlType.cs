namespace Llmq.Formats.Gguf;

/// <summary>ggml tensor element types, numbered as in ggml.h (the numbers are what a GGUF file stores).</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/// <summary>Block geometry of every ggml type we know (ggml.c's type_traits): elements per block and bytes per block.
/// Types we can only carry (IQ*, TQ*, MXFP4) are listed so that the reader can size and validate them.</summary>
public static class GgmlTypes
{
    /// <summary>Elements in one super-block of the K-quants (QK_K).</summary>
    public const int QK_K = 256;

    static readonly Dictionary<GgmlType, (int Block, int Bytes)> Traits = new()
    {
        [GgmlType.F32] = (1, 4), [GgmlType.F16] = (1, 2), [GgmlType.BF16] = (1, 2), [GgmlType.F64] = (1, 8),
        [GgmlType.I8] = (1, 1), [GgmlType.I16] = (1, 2), [GgmlType.I32] = (1, 4), [GgmlType.I64] = (1, 8),
        [GgmlType.Q4_0] = (32, 18), [GgmlType.Q4_1] = (32, 20), [GgmlType.Q5_0] = (32, 22), [GgmlType.Q5_1] = (32, 24),
        [GgmlType.Q8_0] = (32, 34), [GgmlType.Q8_1] = (32, 36),
        [GgmlType.Q2_K] = (256, 84), [GgmlType.Q3_K] = (256, 110), [GgmlType.Q4_K] = (256, 144),
        [GgmlType.Q5_K] = (256, 176), [GgmlType.Q6_K] = (256, 210), [GgmlType.Q8_K] = (256, 292),
        [GgmlType.IQ2_XXS] = (256, 66), [GgmlType.IQ2_XS] = (256, 74), [GgmlType.IQ3_XXS] = (256, 98),
        [GgmlType.IQ1_S] = (256, 50), [GgmlType.IQ4_NL] = (32, 18), [GgmlType.IQ3_S] = (256, 110),
        [GgmlType.IQ2_S] = (256, 82), [GgmlType.IQ4_XS] = (256, 136), [GgmlType.IQ1_M] = (256, 56),
        [GgmlType.TQ1_0] = (256, 54), [GgmlType.TQ2_0] = (256, 66), [GgmlType.MXFP4] = (32, 17),
    };

    public static bool IsKnown(GgmlType type) => Traits.ContainsKey(type);

    /// <summary>Elements per block (1 for plain scalars).</summary>
    public static int BlockSize(GgmlType type) => Traits[type].Block;

    /// <summary>Bytes per block.</summary>
    public static int TypeSize(GgmlType type) => Traits[type].Bytes;

    /// <summary>Bytes of one row of <paramref name="columns"/> elements (columns must be a multiple of the block size).</summary>
    public static long RowSize(GgmlType type, long columns)
    {
        var (block, bytes) = Traits[type];
        return columns / block * bytes;
    }

    /// <summary>ggml's lower-case type name ("q4_K", "f16"), as llama.cpp prints it.</summary>
    public static string Name(GgmlType type) => type switch
    {
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q8_K
            => type.ToString().ToLowerInvariant()[..^1] + "K",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>Parses a type name case-insensitively ("Q4_K", "q8_0", "f16").</summary>
    public static bool TryParse(string name, out GgmlType type)
    {
        foreach (var t in Traits.Keys)
            if (string.Equals(t.ToString(), name, StringComparison.OrdinalIgnoreCase)) { type = t; return true; }
        type = default;
        return false;
    }

    /// <summary>Whether we can turn this type back into float32.</summary>
    public static bool CanDequantize(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.F64
        or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>Whether we can write this type from float32.</summary>
    public static bool CanQuantize(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;
}
