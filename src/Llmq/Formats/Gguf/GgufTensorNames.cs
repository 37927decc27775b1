using System.Text.RegularExpressions;

namespace Llmq.Formats.Gguf;

/// <summary>How a Hugging Face Llama tensor becomes a GGUF one: its name, and whether its rows are reordered.</summary>
public enum GgufRowOrder
{
    AsIs,
    /// <summary>q_proj: within each head, HF's two rotary halves are interleaved (llama.cpp rotates adjacent pairs).</summary>
    PermuteQueryHeads,
    /// <summary>k_proj: the same over the key/value heads.</summary>
    PermuteKeyHeads,
}

/// <summary>The Llama-family name table of convert_hf_to_gguf.py (architecture knowledge as data), the q/k row
/// permutation it applies, and the tensor order llama-quantize writes (non-layer tensors first, then by layer).</summary>
public static partial class GgufTensorNames
{
    /// <summary>llama.cpp's per-dimension rotary frequency divisors (rope_scaling 'llama3'); no Hugging Face tensor holds them.</summary>
    public const string RopeFrequencies = "rope_freqs.weight";

    static readonly (string Hf, string Gguf, GgufRowOrder Order)[] LayerTable =
    [
        ("input_layernorm.weight", "attn_norm.weight", GgufRowOrder.AsIs),
        ("self_attn.q_proj.weight", "attn_q.weight", GgufRowOrder.PermuteQueryHeads),
        ("self_attn.k_proj.weight", "attn_k.weight", GgufRowOrder.PermuteKeyHeads),
        ("self_attn.v_proj.weight", "attn_v.weight", GgufRowOrder.AsIs),
        ("self_attn.o_proj.weight", "attn_output.weight", GgufRowOrder.AsIs),
        ("post_attention_layernorm.weight", "ffn_norm.weight", GgufRowOrder.AsIs),
        ("mlp.gate_proj.weight", "ffn_gate.weight", GgufRowOrder.AsIs),
        ("mlp.up_proj.weight", "ffn_up.weight", GgufRowOrder.AsIs),
        ("mlp.down_proj.weight", "ffn_down.weight", GgufRowOrder.AsIs),
    ];

    static readonly (string Hf, string Gguf)[] GlobalTable =
    [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex HfLayer();

    [GeneratedRegex(@"^blk\.(\d+)\.(.+)$")]
    private static partial Regex GgufLayer();

    /// <summary>The GGUF name of a Hugging Face tensor, or null for tensors the GGUF does not carry (rotary caches).</summary>
    public static string? ToGguf(string hfName, out GgufRowOrder order)
    {
        order = GgufRowOrder.AsIs;
        foreach (var (hf, gguf) in GlobalTable)
            if (hf == hfName) return gguf;
        var m = HfLayer().Match(hfName);
        if (m.Success)
        {
            if (m.Groups[2].Value == "self_attn.rotary_emb.inv_freq") return null;
            foreach (var (hf, gguf, o) in LayerTable)
                if (hf == m.Groups[2].Value)
                {
                    order = o;
                    return $"blk.{m.Groups[1].Value}.{gguf}";
                }
        }
        throw new LlmqException($"tensor '{hfName}' has no GGUF name in the Llama table");
    }

    /// <summary>The Hugging Face name of a GGUF tensor and the permutation to undo.</summary>
    public static string ToHf(string ggufName, out GgufRowOrder order)
    {
        order = GgufRowOrder.AsIs;
        foreach (var (hf, gguf) in GlobalTable)
            if (gguf == ggufName) return hf;
        var m = GgufLayer().Match(ggufName);
        if (m.Success)
            foreach (var (hf, gguf, o) in LayerTable)
                if (gguf == m.Groups[2].Value)
                {
                    order = o;
                    return $"model.layers.{m.Groups[1].Value}.{hf}";
                }
        throw new LlmqException($"GGUF tensor '{ggufName}' has no Hugging Face name in the Llama table");
    }

    /// <summary>llama.cpp's weight order (llama_model_loader's weight_name_comparer): by "blk.N." layer number, tensors
    /// outside layers first, then by name.</summary>
    public static int CompareForFile(string a, string b)
    {
        int la = Layer(a), lb = Layer(b);
        return la != lb ? la.CompareTo(lb) : string.CompareOrdinal(a, b);
    }

    /// <summary>The block number of a GGUF tensor name ("blk.3.attn_q.weight" → 3), −1 for the global tensors.</summary>
    public static int Layer(string name)
    {
        var m = GgufLayer().Match(name);
        return m.Success && int.TryParse(m.Groups[1].Value, out var n) ? n : -1;
    }

    /// <summary>The HF row that <see cref="PermuteRows{T}"/> moves to llama.cpp row <paramref name="row"/> of a projection
    /// with <paramref name="headRows"/> (even) rows per head: a converter reading rows straight from the checkpoint needs
    /// no permuted copy of the tensor.</summary>
    public static long PermutedSourceRow(long row, int headRows)
    {
        long head = row / headRows;
        int inHead = (int)(row - head * headRows);
        return head * headRows + inHead % 2 * (headRows / 2) + inHead / 2;
    }

    /// <summary>Reorders the rows of a [heads·headDim, cols] projection from HF's rotate-half layout to llama.cpp's
    /// interleaved pairs (convert_hf_to_gguf.py's permute): row h·d + 2i + p takes row h·d + p·d/2 + i.</summary>
    public static void PermuteRows<T>(ReadOnlySpan<T> source, Span<T> destination, int heads, int cols, bool inverse = false)
    {
        int rows = source.Length / cols, d = rows / heads, half = d / 2;
        if (rows % heads != 0 || d % 2 != 0)
            throw new LlmqException($"cannot split {rows} rows into {heads} heads of even size");
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int p = 0; p < 2; p++)
                {
                    int gguf = h * d + 2 * i + p, hf = h * d + p * half + i;
                    var (from, to) = inverse ? (gguf, hf) : (hf, gguf);
                    source.Slice(from * cols, cols).CopyTo(destination.Slice(to * cols, cols));
                }
    }
}
