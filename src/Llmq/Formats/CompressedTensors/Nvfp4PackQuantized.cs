using Llmq.Checkpoints;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>
/// <c>nvfp4-pack-quantized</c> (spec §2.4; NVFP4, NVFP4A16): E2M1 codes two per byte (even column in the low nibble), an FP8
/// E4M3 scale per 16 weights, and a float32 global scale stored as a multiplier (2688 / amax):
/// <c>w ≈ E2M1(q) · scale / global_scale</c>.
/// <list type="table">
/// <item><c>weight_packed</c> U8 [out, in/2]</item>
/// <item><c>weight_scale</c> F8_E4M3 [out, in/16]</item>
/// <item><c>weight_global_scale</c> F32 [1] — identical across a vLLM fused set (q/k/v, gate/up)</item>
/// <item><c>input_global_scale</c> F32 [1] — NVFP4 (W4A4) only</item>
/// </list>
/// 4.5 bits per weight (+32 bits per tensor).
/// </summary>
public sealed class Nvfp4PackQuantized : ILinearCompressor
{
    public static readonly Nvfp4PackQuantized Instance = new();
    public string Format => CompressionFormat.Nvfp4PackQuantized;

    public bool IsPresent(Checkpoint checkpoint, string module) => checkpoint.Contains(module + ".weight_packed") && checkpoint.Contains(module + ".weight_global_scale");

    public void Write(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype)
    {
        var (qp, m) = (linear.QParams, linear.Module);
        Fp4Packing.WritePacked(writer, m, linear.Codes, qp);
        var scales = ReusableArrays<byte>.Rent(qp.Scale.Length);
        Float8E4M3.FromFloat32(qp.Scale, scales);   // the scales are already FP8 values: this only takes their bytes
        writer.Add(m + ".weight_scale", DType.F8_E4M3, [qp.ScaleRows, qp.ScaleCols], scales);
        ReusableArrays<byte>.Return(scales);
        writer.AddFloat32(m + ".weight_global_scale", [1], [qp.GlobalScale ?? throw new ArgumentException($"{m}: NVFP4 needs a global scale")], DType.F32);
        LinearCompressors.WriteInputs(writer, linear, modelDtype);
    }

    public QuantizedLinear Read(Checkpoint checkpoint, string module, QuantizationScheme scheme)
    {
        var (codes, rows, cols) = Fp4Packing.ReadPacked(checkpoint, module);
        var qp = new QParams(scheme.Weights!, rows, cols) { GlobalScale = checkpoint.ReadFloat32(LinearCompressors.Require(checkpoint, module + ".weight_global_scale").Name)[0] };
        LinearCompressors.ReadScales(checkpoint, module + ".weight_scale", qp.Scale);
        return LinearCompressors.ReadInputs(checkpoint, new QuantizedLinear(module, scheme, qp, codes));
    }
}

/// <summary>
/// <c>mxfp4-pack-quantized</c> (spec §2.5; MXFP4, MXFP4A16): E2M1 codes packed as in NVFP4 and one E8M0 power-of-two scale
/// per 32 weights: <c>w ≈ E2M1(q) · 2^(e − 127)</c>.
/// <list type="table">
/// <item><c>weight_packed</c> U8 [out, in/2]</item>
/// <item><c>weight_scale</c> U8 [out, in/32] (biased exponents)</item>
/// </list>
/// 4.25 bits per weight.
/// </summary>
public sealed class Mxfp4PackQuantized : ILinearCompressor
{
    public static readonly Mxfp4PackQuantized Instance = new();
    public string Format => CompressionFormat.Mxfp4PackQuantized;

    public bool IsPresent(Checkpoint checkpoint, string module) =>
        checkpoint.Contains(module + ".weight_packed") && checkpoint.Contains(module + ".weight_scale") && checkpoint.Info(module + ".weight_scale").DType == DType.U8;

    public void Write(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype)
    {
        var (qp, m) = (linear.QParams, linear.Module);
        Fp4Packing.WritePacked(writer, m, linear.Codes, qp);
        var exponents = ReusableArrays<byte>.Rent(qp.Scale.Length);
        for (int i = 0; i < exponents.Length; i++) exponents[i] = (byte)(Math.ILogB(qp.Scale[i]) + 127);
        writer.Add(m + ".weight_scale", DType.U8, [qp.ScaleRows, qp.ScaleCols], exponents);
        ReusableArrays<byte>.Return(exponents);
        LinearCompressors.WriteInputs(writer, linear, modelDtype);
    }

    public QuantizedLinear Read(Checkpoint checkpoint, string module, QuantizationScheme scheme)
    {
        var (codes, rows, cols) = Fp4Packing.ReadPacked(checkpoint, module);
        var qp = new QParams(scheme.Weights!, rows, cols);
        LinearCompressors.ReadScales(checkpoint, module + ".weight_scale", qp.Scale);
        return LinearCompressors.ReadInputs(checkpoint, new QuantizedLinear(module, scheme, qp, codes));
    }
}

/// <summary>The <c>weight_packed</c> U8 [out, in/2] tensor shared by the FP4 formats.</summary>
static class Fp4Packing
{
    public static void WritePacked(SafetensorsWriter writer, string module, byte[] codes, QParams qp)
    {
        if (qp.Cols % 2 != 0) throw new LlmqException($"{module}: FP4 packing needs an even number of input columns, not {qp.Cols}");
        var packed = ReusableArrays<byte>.Rent(codes.Length / 2);
        int half = qp.Cols / 2;
        Parallel.For(0, qp.Rows, r => Float4E2M1.PackPairs(codes.AsSpan(r * qp.Cols, qp.Cols), packed.AsSpan(r * half, half)));
        writer.Add(module + ".weight_packed", DType.U8, [qp.Rows, half], packed);
        ReusableArrays<byte>.Return(packed);
    }

    public static (byte[] Codes, int Rows, int Cols) ReadPacked(Checkpoint checkpoint, string module)
    {
        var info = LinearCompressors.Require(checkpoint, module + ".weight_packed");
        if (info.DType != DType.U8) throw new InvalidCheckpointException(info.File, info.Name, $"expected U8, found {info.DType}");
        var (rows, half) = LinearCompressors.Shape2(info);
        var codes = GC.AllocateUninitializedArray<byte>(rows * half * 2);
        Float4E2M1.UnpackPairs(checkpoint.Bytes(info.Name), codes);
        return (codes, rows, half * 2);
    }
}
