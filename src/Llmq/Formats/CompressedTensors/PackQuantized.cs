using System.Runtime.InteropServices;
using Llmq.Checkpoints;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// <c>pack-quantized</c> (spec §2.1; W4A16, W4A16_ASYM, W8A16): b-bit ints (1–8) offset by 2^(b−1) and bit-packed LSB-first
/// along each row into int32 words.
/// <list type="table">
/// <item><c>weight_packed</c> I32 [out, ceil(in·b/32)]</item>
/// <item><c>weight_scale</c> model dtype [out, groups] ([out, 1] channel, [1] tensor)</item>
/// <item><c>weight_shape</c> I64 [2] = [out, in]</item>
/// <item><c>weight_zero_point</c> I32 [ceil(out·b/32), groups], packed down the rows — asymmetric only (tensor strategy: I8 [1])</item>
/// <item><c>weight_g_idx</c> I32 [in] — activation order "group" only</item>
/// </list>
/// int4 is 4.0 bits per weight plus one model-dtype scale per group (4.125 bpw at group 128 with bf16 scales).
/// </summary>
public sealed class PackQuantized : ILinearCompressor
{
    public static readonly PackQuantized Instance = new();
    public string Format => CompressionFormat.PackQuantized;

    public bool IsPresent(Checkpoint checkpoint, string module) => checkpoint.Contains(module + ".weight_packed") && checkpoint.Contains(module + ".weight_shape");

    public void Write(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype)
    {
        var (qp, args, m) = (linear.QParams, linear.Weights, linear.Module);
        int bits = args.NumBits, rows = qp.Rows, cols = qp.Cols, wordsPerRow = IntPacking.WordCount(cols, bits);
        var packed = ReusableArrays<int>.Rent(rows * wordsPerRow);
        var codes = linear.Codes;
        Parallel.For(0, rows, r =>
            IntPacking.Pack(MemoryMarshal.Cast<byte, sbyte>(codes.AsSpan(r * cols, cols)), bits, packed.AsSpan(r * wordsPerRow, wordsPerRow)));
        writer.Add(m + ".weight_packed", DType.I32, [rows, wordsPerRow], MemoryMarshal.AsBytes(packed.AsSpan()));
        ReusableArrays<int>.Return(packed);
        writer.AddFloat32(m + ".weight_scale", LinearCompressors.ScaleShape(qp, args), qp.Scale, modelDtype);
        writer.Add(m + ".weight_shape", DType.I64, [2], MemoryMarshal.AsBytes<long>([rows, cols]));
        if (qp.ZeroPoint is { } zp)
        {
            var zq = zp.Select(z => (sbyte)z).ToArray();
            if (args.ResolvedStrategy == QuantizationStrategy.Tensor)
                writer.Add(m + ".weight_zero_point", DType.I8, [1], MemoryMarshal.AsBytes(zq.AsSpan()));
            else
            {
                int packedRows = IntPacking.WordCount(qp.ScaleRows, bits);
                var zw = new int[packedRows * qp.ScaleCols];
                IntPacking.PackColumns(zq, qp.ScaleRows, qp.ScaleCols, bits, zw);
                writer.Add(m + ".weight_zero_point", DType.I32, [packedRows, qp.ScaleCols], MemoryMarshal.AsBytes(zw.AsSpan()));
            }
        }
        if (qp.GroupIndex is { } g)
            writer.Add(m + ".weight_g_idx", DType.I32, [cols], MemoryMarshal.AsBytes(g.AsSpan()));
        LinearCompressors.WriteInputs(writer, linear, modelDtype);
    }

    public QuantizedLinear Read(Checkpoint checkpoint, string module, QuantizationScheme scheme)
    {
        var args = scheme.Weights!;
        int bits = args.NumBits;
        var shapeInfo = LinearCompressors.Require(checkpoint, module + ".weight_shape");
        if (shapeInfo.DType != DType.I64 || shapeInfo.ElementCount != 2)
            throw new InvalidCheckpointException(shapeInfo.File, shapeInfo.Name, "expected I64 [2]");
        var shape = MemoryMarshal.Cast<byte, long>(checkpoint.Bytes(module + ".weight_shape"));
        int rows = checked((int)shape[0]), cols = checked((int)shape[1]);
        var packedInfo = LinearCompressors.Require(checkpoint, module + ".weight_packed");
        int wordsPerRow = IntPacking.WordCount(cols, bits);
        if (packedInfo.DType != DType.I32 || LinearCompressors.Shape2(packedInfo) != (rows, wordsPerRow))
            throw new InvalidCheckpointException(packedInfo.File, packedInfo.Name, $"expected I32 [{rows}, {wordsPerRow}] for weight_shape [{rows}, {cols}] at {bits} bits, found {packedInfo.DType} {packedInfo.ShapeText}");
        int[]? gIdx = null;
        if (checkpoint.Contains(module + ".weight_g_idx"))
            gIdx = MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(module + ".weight_g_idx")).ToArray();
        var qp = new QParams(args, rows, cols, gIdx);
        LinearCompressors.ReadScales(checkpoint, module + ".weight_scale", qp.Scale);
        if (qp.ZeroPoint is { } zp)
        {
            var zpInfo = LinearCompressors.Require(checkpoint, module + ".weight_zero_point");
            var zq = new sbyte[zp.Length];
            if (zpInfo.DType == DType.I8) MemoryMarshal.Cast<byte, sbyte>(checkpoint.Bytes(zpInfo.Name)).CopyTo(zq);
            else IntPacking.UnpackColumns(MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(zpInfo.Name)), qp.ScaleRows, qp.ScaleCols, bits, zq);
            for (int i = 0; i < zp.Length; i++) zp[i] = zq[i];
        }
        var words = MemoryMarshal.Cast<byte, int>(checkpoint.Bytes(packedInfo.Name)).ToArray();
        var codes = GC.AllocateUninitializedArray<byte>(rows * cols);
        Parallel.For(0, rows, r =>
            IntPacking.Unpack(words.AsSpan(r * wordsPerRow, wordsPerRow), bits, MemoryMarshal.Cast<byte, sbyte>(codes.AsSpan(r * cols, cols))));
        return LinearCompressors.ReadInputs(checkpoint, new QuantizedLinear(module, scheme, qp, codes));
    }
}
