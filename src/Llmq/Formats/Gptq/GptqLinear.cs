using System.Runtime.InteropServices;
using Llmq.Checkpoints;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Formats.Gptq;

/// <summary>
/// One Linear in the GPTQ checkpoint layout of AutoGPTQ / GPTQModel (<c>checkpoint_format: "gptq"</c>, the "v1"
/// zero-point convention), which transformers' and vLLM's GPTQ loaders read. With b bits, in input and out output features
/// and G groups:
/// <list type="table">
/// <item><c>qweight</c> I32 [in·b/32, out]: unsigned codes u = q + 2^(b−1), bit-packed LSB-first down each column (along
/// the input dimension) — for 3 bits the same dense stream AutoGPTQ's 10+1+10+1+10 word pattern produces.</item>
/// <item><c>qzeros</c> I32 [G, out·b/32]: unsigned zero points z = zp + 2^(b−1), stored as (z − 1) mod 2^b (v1), packed
/// along each row (the output dimension). Symmetric: z = 2^(b−1), so 4-bit words are 0x77777777.</item>
/// <item><c>scales</c> F16 [G, out].</item>
/// <item><c>g_idx</c> I32 [in]: group of every input column (i / group_size unless activation order "group").</item>
/// </list>
/// Dequantization: w[o, i] = (u[i, o] − z[g_idx[i], o]) · scales[g_idx[i], o] = (q − zp) · scale, the compressed-tensors value.
/// The v1 wrap: an unsigned zero point of 0 is stored as 2^b − 1. Readers that add 1 without masking (AutoGPTQ's v1 kernels)
/// then see 2^b; we mask, as GPTQModel's v1→v2 conversion effectively does. Symmetric checkpoints never hit it.
/// </summary>
public static class GptqLinear
{
    public const string QWeight = ".qweight", QZeros = ".qzeros", Scales = ".scales", GIdx = ".g_idx";

    /// <summary>The four tensors of one Linear, unpacked shapes in <see cref="Out"/>, <see cref="In"/>, <see cref="Groups"/>.</summary>
    public sealed record Packed(int Bits, int Out, int In, int Groups, int[] QWeight, int[] QZeros, float[] Scales, int[] GIdx);

    /// <summary>Whether GPTQ kernels can hold an [out × in] weight at <paramref name="bits"/>: whole int32 words along both dimensions.</summary>
    public static string? Unsupported(int outFeatures, int inFeatures, int bits) =>
        (long)inFeatures * bits % 32 != 0 ? $"{inFeatures} input features × {bits} bits is not a whole number of int32 words"
        : (long)outFeatures * bits % 32 != 0 ? $"{outFeatures} output features × {bits} bits is not a whole number of int32 words"
        : null;

    /// <summary>Packs codes (two's-complement bytes, [out × in]) and their qparams (channel or group strategy).</summary>
    public static Packed Pack(ReadOnlySpan<byte> codes, QParams qp, int bits)
    {
        int rows = qp.Rows, cols = qp.Cols, groups = qp.ScaleCols;
        if (qp.RowsPerSlot != 1 || qp.ScaleRows != rows || qp.GlobalScale is not null)
            throw new LlmqException("the GPTQ format stores per-output-channel scales of channel or group quantization only");
        if (Unsupported(rows, cols, bits) is { } why) throw new LlmqException($"GPTQ format: {why}");
        if (codes.Length != rows * cols) throw new ArgumentException($"expected {rows * cols} codes", nameof(codes));

        var transposed = new sbyte[cols * rows]; // [in × out]
        for (var o = 0; o < rows; o++)
            for (var i = 0; i < cols; i++)
                transposed[i * rows + o] = (sbyte)codes[o * cols + i];
        var qweight = new int[cols * bits / 32 * rows];
        IntPacking.PackColumns(transposed, cols, rows, bits, qweight);

        int offset = 1 << (bits - 1), mask = (1 << bits) - 1, zeroWords = rows * bits / 32;
        var qzeros = new int[groups * zeroWords];
        var scales = new float[groups * rows];
        var stored = new sbyte[rows];
        for (var g = 0; g < groups; g++)
        {
            for (var o = 0; o < rows; o++)
            {
                var slot = o * groups + g;
                scales[g * rows + o] = qp.Scale[slot];
                var zero = (int)qp.ZeroPointOf(slot) + offset;
                stored[o] = (sbyte)(((zero - 1) & mask) - offset); // IntPacking adds the offset back
            }
            IntPacking.Pack(stored, bits, qzeros.AsSpan(g * zeroWords, zeroWords));
        }

        var gIdx = qp.GroupIndex is { } given ? (int[])given.Clone() : new int[cols];
        if (qp.GroupIndex is null)
            for (var i = 0; i < cols; i++) gIdx[i] = i / qp.ColsPerSlot;
        return new Packed(bits, rows, cols, groups, qweight, qzeros, scales, gIdx);
    }

    /// <summary>w [out × in] from the packed tensors (the formula in the type's summary).</summary>
    public static void Dequantize(Packed p, Span<float> weight)
    {
        if (weight.Length != p.Out * p.In) throw new ArgumentException($"expected {p.Out * p.In} weights", nameof(weight));
        int offset = 1 << (p.Bits - 1), mask = (1 << p.Bits) - 1, zeroWords = p.Out * p.Bits / 32;
        var codes = new sbyte[p.In * p.Out]; // [in × out], q = u − offset
        IntPacking.UnpackColumns(p.QWeight, p.In, p.Out, p.Bits, codes);
        var zeros = new float[p.Groups * p.Out]; // zp = z − offset
        var stored = new sbyte[p.Out];
        for (var g = 0; g < p.Groups; g++)
        {
            IntPacking.Unpack(p.QZeros.AsSpan(g * zeroWords, zeroWords), p.Bits, stored);
            for (var o = 0; o < p.Out; o++) zeros[g * p.Out + o] = ((stored[o] + offset + 1) & mask) - offset;
        }
        for (var i = 0; i < p.In; i++)
        {
            var g = p.GIdx[i];
            if ((uint)g >= (uint)p.Groups) throw new LlmqException($"g_idx[{i}] = {g} is outside the {p.Groups} groups");
            for (var o = 0; o < p.Out; o++)
                weight[o * p.In + i] = (codes[i * p.Out + o] - zeros[g * p.Out + o]) * p.Scales[g * p.Out + o];
        }
    }

    /// <summary>Writes <c>module.qweight/.qzeros/.scales/.g_idx</c>; scales as F16, what GPTQ kernels take.</summary>
    public static void Write(SafetensorsWriter writer, string module, Packed p)
    {
        writer.Add(module + QWeight, DType.I32, [p.In * p.Bits / 32, p.Out], MemoryMarshal.AsBytes(p.QWeight.AsSpan()));
        writer.Add(module + QZeros, DType.I32, [p.Groups, p.Out * p.Bits / 32], MemoryMarshal.AsBytes(p.QZeros.AsSpan()));
        writer.AddFloat32(module + Scales, [p.Groups, p.Out], p.Scales, DType.F16);
        writer.Add(module + GIdx, DType.I32, [p.In], MemoryMarshal.AsBytes(p.GIdx.AsSpan()));
    }

    /// <summary>Reads a module's tensors back, checking their shapes against each other.</summary>
    public static Packed Read(Checkpoint checkpoint, string module, int bits)
    {
        var qweight = Info(checkpoint, module + QWeight);
        var qzeros = Info(checkpoint, module + QZeros);
        var scales = Info(checkpoint, module + Scales);
        int outFeatures = (int)qweight.Shape[1], inFeatures = (int)(qweight.Shape[0] * 32 / bits), groups = (int)scales.Shape[0];
        if (qweight.DType != DType.I32) throw new InvalidCheckpointException(qweight.File, qweight.Name, $"is {qweight.DType}, expected I32");
        if (scales.Shape[1] != outFeatures)
            throw new InvalidCheckpointException(scales.File, scales.Name, $"has shape {scales.ShapeText}, expected [groups, {outFeatures}]");
        if (qzeros.DType != DType.I32 || qzeros.Shape[0] != groups || qzeros.Shape[1] * 32 != (long)outFeatures * bits)
            throw new InvalidCheckpointException(qzeros.File, qzeros.Name, $"has shape {qzeros.ShapeText}, expected [{groups}, {outFeatures * bits / 32}] I32");
        int[] gIdx;
        if (checkpoint.Contains(module + GIdx))
        {
            var info = checkpoint.Info(module + GIdx);
            if (info.ElementCount != inFeatures || info.DType != DType.I32)
                throw new InvalidCheckpointException(info.File, info.Name, $"has shape {info.ShapeText} {info.DType}, expected [{inFeatures}] I32");
            gIdx = MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(info.Name)).ToArray();
        }
        else
        {
            // Older AutoGPTQ checkpoints without g_idx: contiguous groups.
            gIdx = new int[inFeatures];
            var groupSize = (inFeatures + groups - 1) / groups;
            for (var i = 0; i < inFeatures; i++) gIdx[i] = i / groupSize;
        }
        return new Packed(bits, outFeatures, inFeatures, groups,
            MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(qweight.Name)).ToArray(),
            MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(qzeros.Name)).ToArray(),
            checkpoint.ReadFloat32(scales.Name), gIdx);
    }

    static TensorInfo Info(Checkpoint checkpoint, string name) =>
        checkpoint.Contains(name) ? checkpoint.Info(name) : throw new InvalidCheckpointException(checkpoint.Path, name, "missing");
}
