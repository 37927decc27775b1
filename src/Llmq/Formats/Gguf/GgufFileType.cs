namespace Llmq.Formats.Gguf;

/// <summary>llama.cpp's llama_ftype: the "--type" of a whole file, stored as general.file_type.</summary>
public enum GgufFileType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
    Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, BF16 = 32,
}

/// <summary>Which ggml type each tensor of a file type gets: llama-quantize's llama_tensor_get_type for the Llama family
/// (the default type, the per-role upgrades of the K mixes, and the fallbacks for rows that do not divide the block).</summary>
public sealed class GgufTypePolicy
{
    readonly GgufFileType _fileType;
    readonly int _layers;
    readonly int _gqa;
    readonly bool _hasImatrix;
    readonly bool _tiedEmbeddings;
    int _attnV;      // attn_v tensors seen so far (llama.cpp's i_attention_wv)
    int _ffnDown;    // ffn_down tensors seen so far (i_ffn_down)

    /// <param name="attentionVCount">number of attn_v tensors in the file (n_attention_wv)</param>
    /// <param name="tiedEmbeddings">true when the file has no output.weight (token_embd then gets the output's type)</param>
    public GgufTypePolicy(GgufFileType fileType, int layers, int headCount, int kvHeadCount, bool hasImatrix, bool tiedEmbeddings,
        int attentionVCount)
    {
        _fileType = fileType;
        _layers = layers;
        _gqa = kvHeadCount == 0 ? 1 : headCount / kvHeadCount;
        _hasImatrix = hasImatrix;
        _tiedEmbeddings = tiedEmbeddings;
        AttentionVCount = attentionVCount;
    }

    int AttentionVCount { get; }

    public static GgufFileType Parse(string name) =>
        Enum.TryParse<GgufFileType>(name, ignoreCase: true, out var t) && Enum.IsDefined(t) && !char.IsDigit(name[0])
            ? t
            : throw new LlmqException($"unknown GGUF type '{name}' (one of {string.Join(", ", Enum.GetNames<GgufFileType>())})");

    /// <summary>The per-tensor type of a file type's bulk: Q4_K for Q4_K_M, F16 for F16…</summary>
    public static GgmlType DefaultType(GgufFileType f) => f switch
    {
        GgufFileType.F32 => GgmlType.F32,
        GgufFileType.F16 => GgmlType.F16,
        GgufFileType.BF16 => GgmlType.BF16,
        GgufFileType.Q4_0 => GgmlType.Q4_0,
        GgufFileType.Q4_1 => GgmlType.Q4_1,
        GgufFileType.Q5_0 => GgmlType.Q5_0,
        GgufFileType.Q5_1 => GgmlType.Q5_1,
        GgufFileType.Q8_0 => GgmlType.Q8_0,
        GgufFileType.Q2_K => GgmlType.Q2_K,
        GgufFileType.Q3_K_S or GgufFileType.Q3_K_M or GgufFileType.Q3_K_L => GgmlType.Q3_K,
        GgufFileType.Q4_K_S or GgufFileType.Q4_K_M => GgmlType.Q4_K,
        GgufFileType.Q5_K_S or GgufFileType.Q5_K_M => GgmlType.Q5_K,
        GgufFileType.Q6_K => GgmlType.Q6_K,
        _ => throw new LlmqException($"unsupported GGUF file type {f}"),
    };

    /// <summary>Whether llama-quantize would quantize this tensor at all: 2-D+ "*weight" tensors other than norms.
    /// The rest are stored as float32, as convert_hf_to_gguf.py stores them.</summary>
    public static bool IsQuantizable(string name, int dimensions) =>
        dimensions >= 2 && name.EndsWith("weight", StringComparison.Ordinal) && !name.Contains("_norm.weight", StringComparison.Ordinal);

    /// <summary>The type of the next tensor. Call once per tensor, in file order (the K mixes count attn_v and ffn_down).</summary>
    /// <param name="columns">the row length ne[0]</param>
    public GgmlType Choose(string name, int dimensions, long columns)
    {
        if (!IsQuantizable(name, dimensions))
            return GgmlType.F32;
        var type = DefaultType(_fileType);
        if (!IsQuantized(type))
            return type;
        type = Upgrade(name, type, columns);
        return Fallback(type, columns);
    }

    static bool IsQuantized(GgmlType t) => t is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16);

    bool UseMoreBits(int i, int n) => i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;

    GgmlType Upgrade(string name, GgmlType type, long columns)
    {
        var f = _fileType;
        if (name == "output.weight" || (_tiedEmbeddings && name == "token_embd.weight"))
        {
            // output (or the tied embedding that serves as it): Q8_0 when the row does not divide the block, else Q6_K
            if (columns % GgmlTypes.BlockSize(type) != 0) return GgmlType.Q8_0;
            return type != GgmlType.Q8_0 ? GgmlType.Q6_K : type;
        }
        if (name == "token_embd.weight")
            return type;
        if (name.Contains("attn_v.weight", StringComparison.Ordinal))
        {
            int i = _attnV++;
            if (f == GgufFileType.Q2_K) return _gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
            if (f == GgufFileType.Q3_K_M) return i < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
            if (f == GgufFileType.Q3_K_L) return GgmlType.Q5_K;
            if ((f == GgufFileType.Q4_K_M || f == GgufFileType.Q5_K_M) && UseMoreBits(i, AttentionVCount)) return GgmlType.Q6_K;
            if (f == GgufFileType.Q4_K_S && i < 4) return GgmlType.Q5_K;
            return type;
        }
        if (name.Contains("ffn_down", StringComparison.Ordinal))
        {
            int i = _ffnDown++, n = _layers;
            if (f == GgufFileType.Q2_K) return GgmlType.Q3_K;
            if (f == GgufFileType.Q3_K_M) return i < n / 16 ? GgmlType.Q5_K : GgmlType.Q4_K;
            if (f == GgufFileType.Q3_K_L) return GgmlType.Q5_K;
            if (f == GgufFileType.Q4_K_M) return UseMoreBits(i, n) ? GgmlType.Q6_K : type;
            if (f == GgufFileType.Q5_K_M && UseMoreBits(i, n)) return GgmlType.Q6_K;
            if (f == GgufFileType.Q4_K_S && i < n / 8) return GgmlType.Q5_K;
            if ((f == GgufFileType.Q4_0 || f == GgufFileType.Q5_0) && _hasImatrix && i < n / 8)
                return f == GgufFileType.Q4_0 ? GgmlType.Q4_1 : GgmlType.Q5_1;
            return type;
        }
        if (name.Contains("attn_output.weight", StringComparison.Ordinal))
        {
            return f switch
            {
                GgufFileType.Q2_K => GgmlType.Q3_K,
                GgufFileType.Q3_K_M => GgmlType.Q4_K,
                GgufFileType.Q3_K_L => GgmlType.Q5_K,
                _ => type,
            };
        }
        return type;
    }

    /// <summary>llama.cpp's tensor_type_fallback for rows that the chosen block does not divide: K types fall back to a
    /// 32-wide type, and a row that 32 does not divide either (stories260K's ffn_down, 172 wide) is stored as F16.</summary>
    static GgmlType Fallback(GgmlType type, long columns)
    {
        if (columns % GgmlTypes.BlockSize(type) == 0) return type;
        var next = type switch
        {
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ => GgmlType.F16,
        };
        return columns % GgmlTypes.BlockSize(next) == 0 ? next : GgmlType.F16;
    }
}
