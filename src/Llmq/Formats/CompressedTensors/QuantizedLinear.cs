using Llmq.Checkpoints;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Formats.CompressedTensors;

/// <summary>Observed range of a Linear's input over the calibration data (running min / max, llm-compressor's
/// <c>static_minmax</c>), for schemes with static or "local" input scales.</summary>
public readonly record struct ActivationRange(float Min, float Max)
{
    public float AbsMax => MathF.Max(MathF.Abs(Min), MathF.Abs(Max));

    /// <summary>The range covering this one and <paramref name="other"/> (<c>static_minmax</c>'s update).</summary>
    public ActivationRange Union(ActivationRange other) => new(MathF.Min(Min, other.Min), MathF.Max(Max, other.Max));

    /// <summary>The range as values of the model dtype.</summary>
    public ActivationRange RoundedTo(ModelPrecision precision) => new(precision.Round(Min), precision.Round(Max));
}

/// <summary>
/// One quantized Linear in memory, between quantization and its on-disk format: the weight's codes (one byte per element:
/// int values as sbytes, FP8 e4m3 bytes, or unpacked E2M1 codes), its <see cref="QParams"/>, and the stored input
/// quantization parameters when the scheme has static inputs.
/// </summary>
public sealed record QuantizedLinear(string Module, QuantizationScheme Scheme, QParams QParams, byte[] Codes)
{
    public QuantizationArgs Weights => Scheme.Weights!;
    /// <summary>Static per-tensor input scale (<c>input_scale</c>), when the scheme has static tensor inputs.</summary>
    public float? InputScale { get; init; }
    public float? InputZeroPoint { get; init; }
    /// <summary>NVFP4 <c>input_global_scale</c> = 2688 / amax of the input.</summary>
    public float? InputGlobalScale { get; init; }

    /// <summary>Quantizes <paramref name="weight"/> ([rows, cols]) with fixed <paramref name="qparams"/> and derives the
    /// stored input parameters from <paramref name="input"/>. GPTQ passes its already-on-grid weights here: re-quantizing
    /// them with the same qparams recovers its codes, as compressed-tensors does at save time.</summary>
    public static QuantizedLinear Create(string module, QuantizationScheme scheme, ReadOnlySpan<float> weight, QParams qparams,
        ModelPrecision precision, ActivationRange? input = null)
    {
        var codes = ReusableArrays<byte>.Rent(weight.Length);
        FakeQuant.Quantize(weight, qparams, scheme.Weights!, codes);
        return new QuantizedLinear(module, scheme, qparams, codes).WithInputs(input, precision);
    }

    /// <summary>
    /// This Linear with the stored input parameters of its scheme (spec §2.0, §10.8), from the observed range of its input:
    /// static tensor inputs get <c>input_scale</c> (FP8: <c>amax / 448</c>; int: amax / 127.5, plus a zero point when
    /// asymmetric), "local" tensor_group inputs (NVFP4) <c>input_global_scale = 2688 / amax</c> in float32. The range is first
    /// rounded to the model dtype, the dtype the observed activations have in the reference; the scale is computed in it.
    /// Dynamic or absent input quantization stores nothing.
    /// </summary>
    public QuantizedLinear WithInputs(ActivationRange? input, ModelPrecision precision)
    {
        if (Scheme.InputActivations is not { } a || a.Dynamic == DynamicMode.Dynamic) return this;
        if (input is not { } range)
            throw new LlmqException($"{Module}: scheme needs calibrated input ranges (static input quantization); none were given");
        range = range.RoundedTo(precision);
        if (a.Dynamic == DynamicMode.Local)
            return this with { InputGlobalScale = QParams.TensorGroupGlobalScale(range.AbsMax) };
        if (a.ResolvedStrategy != QuantizationStrategy.Tensor)
            throw new LlmqException($"{Module}: static input quantization with strategy {QuantizationArgs.Name(a.ResolvedStrategy)} is not supported");
        var (scale, zp) = QParams.ComputeSlot(range.Min, range.Max, a, precision);
        return this with { InputScale = scale, InputZeroPoint = a.Symmetric ? null : zp };
    }
}

/// <summary>An on-disk compressed-tensors format for one Linear: the tensors it writes and how to read them back.</summary>
public interface ILinearCompressor
{
    string Format { get; }

    /// <summary>Writes the module's tensors (everything but its bias) in <paramref name="modelDtype"/> where the format says
    /// "model dtype".</summary>
    void Write(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype);

    /// <summary>Reads the module back (codes and qparams) from a checkpoint written in this format.</summary>
    QuantizedLinear Read(Checkpoint checkpoint, string module, QuantizationScheme scheme);

    /// <summary>Whether the checkpoint holds this module in this format (its characteristic tensor is present).</summary>
    bool IsPresent(Checkpoint checkpoint, string module);
}

/// <summary>The compressors by format name, and the shared pieces of reading and writing scales.</summary>
public static class LinearCompressors
{
    public static ILinearCompressor For(string format) => format switch
    {
        CompressionFormat.PackQuantized => PackQuantized.Instance,
        CompressionFormat.IntQuantized or CompressionFormat.FloatQuantized or CompressionFormat.NaiveQuantized => new NaiveQuantized(format),
        CompressionFormat.Nvfp4PackQuantized => Nvfp4PackQuantized.Instance,
        CompressionFormat.Mxfp4PackQuantized => Mxfp4PackQuantized.Instance,
        _ => throw new LlmqException($"compressed-tensors format '{format}' is not supported"),
    };

    /// <summary>Quantizes and writes one Linear: the single call a quantization algorithm needs to emit a module.</summary>
    public static void WriteLinear(SafetensorsWriter writer, string module, QuantizationScheme scheme, ReadOnlySpan<float> weight,
        QParams qparams, DType modelDtype, ActivationRange? input = null)
    {
        var linear = QuantizedLinear.Create(module, scheme, weight, qparams, Precision(modelDtype), input);
        For(scheme.ResolvedFormat).Write(writer, linear, modelDtype);
        ReusableArrays<byte>.Return(linear.Codes);   // written and dropped: the next Linear of this shape reuses its pages
    }

    /// <summary>The scale precision of a model dtype (F32, BF16, F16).</summary>
    public static ModelPrecision Precision(DType dtype) => dtype switch
    {
        DType.BF16 => ModelPrecision.BFloat16,
        DType.F16 => ModelPrecision.Float16,
        DType.F32 => ModelPrecision.Float32,
        _ => throw new LlmqException($"weights of dtype {dtype} cannot be quantized (expected F32, F16 or BF16)"),
    };

    /// <summary>Shape of a weight's scale tensor: [1] for tensor strategy, else [ScaleRows, ScaleCols].</summary>
    public static long[] ScaleShape(QParams qp, QuantizationArgs args) =>
        args.ResolvedStrategy == QuantizationStrategy.Tensor ? [1] : [qp.ScaleRows, qp.ScaleCols];

    internal static void WriteInputs(SafetensorsWriter writer, QuantizedLinear linear, DType modelDtype)
    {
        if (linear.InputScale is { } s) writer.AddFloat32(linear.Module + ".input_scale", [1], [s], modelDtype);
        if (linear.InputZeroPoint is { } z) writer.Add(linear.Module + ".input_zero_point", DType.I8, [1], [(byte)(sbyte)z]);
        if (linear.InputGlobalScale is { } g) writer.AddFloat32(linear.Module + ".input_global_scale", [1], [g], DType.F32);
    }

    internal static QuantizedLinear ReadInputs(Checkpoint checkpoint, QuantizedLinear linear)
    {
        string m = linear.Module;
        return linear with
        {
            InputScale = checkpoint.Contains(m + ".input_scale") ? checkpoint.ReadFloat32(m + ".input_scale")[0] : null,
            InputZeroPoint = checkpoint.Contains(m + ".input_zero_point") ? (sbyte)checkpoint.Bytes(m + ".input_zero_point")[0] : null,
            InputGlobalScale = checkpoint.Contains(m + ".input_global_scale") ? checkpoint.ReadFloat32(m + ".input_global_scale")[0] : null,
        };
    }

    /// <summary>Reads a scale tensor of any dtype compressed-tensors uses (model dtype, F8_E4M3, U8 E8M0) into <paramref name="target"/>.</summary>
    internal static void ReadScales(Checkpoint checkpoint, string name, Span<float> target)
    {
        var info = Require(checkpoint, name);
        if (info.ElementCount != target.Length)
            throw new InvalidCheckpointException(info.File, name, $"expected {target.Length} scales, found shape {info.ShapeText}");
        var bytes = checkpoint.Bytes(name);
        switch (info.DType)
        {
            case DType.F8_E4M3: Float8E4M3.ToFloat32(bytes, target); break;
            case DType.U8 or DType.F8_E8M0: for (int i = 0; i < target.Length; i++) target[i] = E8M0.ToFloat(bytes[i]); break;
            default: checkpoint.ReadFloat32(name, target); break;
        }
    }

    internal static TensorInfo Require(Checkpoint checkpoint, string name) =>
        checkpoint.Contains(name) ? checkpoint.Info(name) : throw new InvalidCheckpointException(checkpoint.Path, name, "missing");

    /// <summary>A [rows, cols] shape from a tensor, checked to be 2-D.</summary>
    internal static (int Rows, int Cols) Shape2(TensorInfo info)
    {
        if (info.Shape.Length != 2 || info.Shape[0] > int.MaxValue || info.Shape[1] > int.MaxValue)
            throw new InvalidCheckpointException(info.File, info.Name, $"expected a 2-D tensor, found {info.ShapeText}");
        return ((int)info.Shape[0], (int)info.Shape[1]);
    }
}
