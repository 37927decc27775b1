using Llmq.Numerics;

namespace Llmq.Quantization;

/// <summary>
/// The quantization parameters of one [Rows, Cols] weight: a scale (and, asymmetric, a zero point) per slot, where a slot is
/// the whole tensor, one row (channel), one group of columns of a row (group / tensor_group), or one block; plus the float32
/// global scale of tensor_group (NVFP4). Scales hold the values exactly as they are stored (model-dtype rounded, FP8 values,
/// or powers of two for MX); zero points hold integral values. <see cref="GroupIndex"/> (GPTQ activation order "group")
/// maps each column to its group instead of <c>col / group_size</c>.
/// </summary>
public sealed class QParams
{
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Rows sharing one slot (1 for channel/group, block height for block, all rows for tensor).</summary>
    public int RowsPerSlot { get; }
    /// <summary>Columns sharing one slot along a row (group size, block width, or all columns).</summary>
    public int ColsPerSlot { get; }
    /// <summary>Shape of the scale tensor: [ScaleRows, ScaleCols].</summary>
    public int ScaleRows { get; }
    public int ScaleCols { get; }
    public float[] Scale { get; }
    public float[]? ZeroPoint { get; }
    /// <summary>tensor_group only: <c>2688 / amax</c> (stored as <c>weight_global_scale</c>), shared across a fused set.</summary>
    public float? GlobalScale { get; set; }
    public int[]? GroupIndex { get; }

    public QParams(QuantizationArgs args, int rows, int cols, int[]? groupIndex = null)
    {
        if (rows <= 0 || cols <= 0) throw new ArgumentException($"weight shape [{rows}, {cols}] is empty");
        Rows = rows;
        Cols = cols;
        GroupIndex = groupIndex;
        switch (args.ResolvedStrategy)
        {
            case QuantizationStrategy.Tensor:
                (RowsPerSlot, ColsPerSlot, ScaleRows, ScaleCols) = (rows, cols, 1, 1);
                break;
            case QuantizationStrategy.Channel:
                (RowsPerSlot, ColsPerSlot, ScaleRows, ScaleCols) = (1, cols, rows, 1);
                break;
            case QuantizationStrategy.Group or QuantizationStrategy.TensorGroup:
                int gs = args.GroupSize!.Value;
                if (groupIndex is not null && groupIndex.Length != cols) throw new ArgumentException("g_idx must have one entry per column");
                // A partial last group counts as zero-padded to a whole group (spec: scale shape [out, ceil(in / group_size)]).
                (RowsPerSlot, ColsPerSlot, ScaleRows, ScaleCols) = (1, gs, rows, (cols + gs - 1) / gs);
                break;
            case QuantizationStrategy.Block:
                int bh = args.BlockStructure![0], bw = args.BlockStructure[1];
                (RowsPerSlot, ColsPerSlot, ScaleRows, ScaleCols) = (bh, bw, (rows + bh - 1) / bh, (cols + bw - 1) / bw);
                break;
            default:
                throw new LlmqException($"weights cannot use strategy {QuantizationArgs.Name(args.ResolvedStrategy)}");
        }
        Scale = new float[ScaleRows * ScaleCols];
        ZeroPoint = args.Symmetric ? null : new float[Scale.Length];
    }

    public int SlotCount => Scale.Length;

    const float SmallestNormal = 1.17549435e-38f;   // FLT_MIN

    /// <summary>The slot of element (row, col).</summary>
    public int Slot(int row, int col) =>
        row / RowsPerSlot * ScaleCols + (GroupIndex is null ? col / ColsPerSlot : GroupIndex[col]);

    /// <summary>The scale quantization divides by: <c>scale / global_scale</c> for tensor_group, else the scale.</summary>
    public float EffectiveScale(int slot) => GlobalScale is { } g ? Scale[slot] / g : Scale[slot];

    public float ZeroPointOf(int slot) => ZeroPoint is null ? 0f : ZeroPoint[slot];

    /// <summary>NVFP4 global scale <c>(448·6) / max(amax, FLT_MIN)</c> in float32; 1 when that is not finite.</summary>
    public static float TensorGroupGlobalScale(float amax)
    {
        float g = 448f * 6f / MathF.Max(amax, SmallestNormal);
        return float.IsFinite(g) ? g : 1f;
    }

    /// <summary>
    /// compressed-tensors' <c>calculate_qparams</c> for one slot (spec §4.2), in its order of operations: include zero in the
    /// range; symmetric <c>amax / ((qmax − qmin)/2)</c> or asymmetric <c>(max − min)/(qmax − qmin)</c> rounded to the model dtype
    /// (MX: the E8M0 power of two); times the global scale; rounded to <c>scale_dtype</c> (FP8) when
    /// <paramref name="roundToScaleDtype"/>; a zero scale replaced by eps; the zero point <c>qmin − min/scale</c> clamped and
    /// rounded half to even.
    /// </summary>
    public static (float Scale, float ZeroPoint) ComputeSlot(float min, float max, QuantizationArgs args, ModelPrecision precision,
        float? globalScale = null, bool roundToScaleDtype = true)
    {
        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);
        float qmin = args.QMin, qmax = args.QMax;
        float scale;
        if (args.Symmetric)
        {
            float amax = MathF.Max(-min, max);
            if (args.IsMx)
                return (E8M0.ToFloat(E8M0.ScaleExponent(precision.Round(amax), args.NumBits == 4 ? 2 : 8)), 0f);
            scale = precision.Round(amax / ((qmax - qmin) / 2f));
        }
        else
        {
            scale = precision.Round((max - min) / (qmax - qmin));
        }
        if (globalScale is { } g) scale = g * scale;
        bool fp8Scales = args.ScaleDtype == TorchDtypes.Float8E4M3;
        if (fp8Scales && roundToScaleDtype) scale = Float8E4M3.ToFloat(Float8E4M3.FromFloatSaturating(scale));
        if (scale == 0f) scale = fp8Scales ? 0.125f : precision.Eps();
        if (args.Symmetric) return (scale, 0f);
        float zp = Math.Clamp(qmin - min / scale, qmin, qmax);
        return (scale, MathF.Round(zp, MidpointRounding.ToEven));
    }

    /// <summary>Fills every slot from per-slot minima and maxima (see <see cref="ComputeSlot"/>).</summary>
    public void SetFromMinMax(ReadOnlySpan<float> mins, ReadOnlySpan<float> maxs, QuantizationArgs args, ModelPrecision precision)
    {
        for (int s = 0; s < Scale.Length; s++)
        {
            var (scale, zp) = ComputeSlot(mins[s], maxs[s], args, precision, GlobalScale);
            Scale[s] = scale;
            if (ZeroPoint is not null) ZeroPoint[s] = zp;
        }
    }
}
