using System.Runtime.InteropServices;
using Llmq.Checkpoints;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// <c>int-quantized</c>, <c>float-quantized</c> and <c>naive-quantized</c> (spec §2.2–2.3; W8A8, FP8, FP8_DYNAMIC, FP8_BLOCK):
/// one byte per weight, unpacked — the three names are aliases with identical bytes.
/// <list type="table">
/// <item><c>weight</c> I8 (int, values in the num_bits range) or F8_E4M3 (float) [out, in]</item>
/// <item><c>weight_scale</c> model dtype: [1] tensor, [out, 1] channel, [out, groups] group, [ceil(out/bh), ceil(in/bw)] block</item>
/// <item><c>weight_zero_point</c> I8, shaped like the scale — asymmetric only</item>
/// <item><c>input_scale</c> model dtype [1] (+ <c>input_zero_point</c> I8 [1]) — static tensor inputs only (FP8)</item>
/// </list>
/// </summary>
public sealed class NaiveQuantized(string format) : ILinearCompressor
{
    public string Format => format;

    public bool IsPresent(Checkpoint checkpoint, string module) =>
        checkpoint.Contains(module + ".weight") && checkpoint.Info(module + ".weight").DType is DType.I8 or DType.F8_E4M3;

    static DType WeightDtype(QuantizationArgs args) => args.Type == QuantizationType.Float ? DType.F8_E4M3 : DType.I8;

    public void Write(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype)
    {
        var (qp, args, m) = (linear.QParams, linear.Weights, linear.Module);
        if (args.Type == QuantizationType.Float && args.NumBits != 8 || args.Type == QuantizationType.Int && args.NumBits > 8)
            throw new LlmqException($"{m}: {format} stores 8-bit floats or ints of at most 8 bits, not {args.NumBits}-bit {args.Type}");
        var scaleShape = LinearCompressors.ScaleShape(qp, args);
        writer.Add(m + ".weight", WeightDtype(args), [qp.Rows, qp.Cols], linear.Codes);
        writer.AddFloat32(m + ".weight_scale", scaleShape, qp.Scale, modelDtype);
        if (qp.ZeroPoint is { } zp)
            writer.Add(m + ".weight_zero_point", DType.I8, scaleShape, MemoryMarshal.AsBytes(zp.Select(z => (sbyte)z).ToArray().AsSpan()));
        LinearCompressors.WriteInputs(writer, linear, modelDtype);
    }

    public QuantizedLinear Read(Checkpoint checkpoint, string module, QuantizationScheme scheme)
    {
        var args = scheme.Weights!;
        var info = LinearCompressors.Require(checkpoint, module + ".weight");
        if (info.DType != WeightDtype(args))
            throw new InvalidCheckpointException(info.File, info.Name, $"expected {WeightDtype(args)} for {format}, found {info.DType}");
        var (rows, cols) = LinearCompressors.Shape2(info);
        var qp = new QParams(args, rows, cols);
        LinearCompressors.ReadScales(checkpoint, module + ".weight_scale", qp.Scale);
        if (qp.ZeroPoint is { } zp)
        {
            var bytes = checkpoint.Bytes(LinearCompressors.Require(checkpoint, module + ".weight_zero_point").Name);
            for (int i = 0; i < zp.Length; i++) zp[i] = (sbyte)bytes[i];
        }
        return LinearCompressors.ReadInputs(checkpoint, new QuantizedLinear(module, scheme, qp, checkpoint.Bytes(info.Name).ToArray()));
    }
}
