using System.Runtime.Intrinsics;
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
        Scale = ReusableArrays<float>.Rent(ScaleRows * ScaleCols);
        Array.Clear(Scale);
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

    /// <summary>Fills every slot from per-slot minima and maxima (see <see cref="ComputeSlot"/>), slots in parallel chunks;
    /// symmetric non-MX scales of bf16 / f32 models vectorized (<see cref="ComputeSlot"/> is the scalar definition).</summary>
    public unsafe void SetFromMinMax(ReadOnlySpan<float> mins, ReadOnlySpan<float> maxs, QuantizationArgs args, ModelPrecision precision)
    {
        int n = Scale.Length;
        if (mins.Length < n || maxs.Length < n) throw new ArgumentException($"expected {n} minima and maxima");
        const int chunk = MaxChunk;
        fixed (float* lo = mins)
        fixed (float* hi = maxs)
        {
            float* lp = lo, hp = hi;
            if (n <= chunk) SetSlots(lp, hp, 0, n, args, precision);
            else Parallel.For(0, (n + chunk - 1) / chunk, c => SetSlots(lp, hp, c * chunk, Math.Min(n, (c + 1) * chunk), args, precision));
        }
    }

    const int MaxChunk = 1 << 14;

    unsafe void SetSlots(float* mins, float* maxs, int begin, int end, QuantizationArgs args, ModelPrecision precision)
    {
        int s = begin;
        if (Vector512.IsHardwareAccelerated && args.Symmetric && !args.IsMx && precision != ModelPrecision.Float16)
            s = SymmetricScales512(mins, maxs, begin, end, args, precision);
        for (; s < end; s++)
        {
            var (scale, zp) = ComputeSlot(mins[s], maxs[s], args, precision, GlobalScale);
            Scale[s] = scale;
            if (ZeroPoint is not null) ZeroPoint[s] = zp;
        }
    }

    /// <summary><see cref="ComputeSlot"/> for symmetric, non-MX args, 16 slots at a time from <paramref name="begin"/> (at most
    /// <see cref="MaxChunk"/>); returns where it stopped (a group of 16 holding a NaN, and the tail, are left to the scalar path).</summary>
    unsafe int SymmetricScales512(float* mins, float* maxs, int begin, int end, QuantizationArgs args, ModelPrecision precision)
    {
        var divisor = Vector512.Create((args.QMax - args.QMin) / 2f);
        var global = Vector512.Create(GlobalScale ?? 1f);
        int s = begin;
        for (; s + 16 <= end; s += 16)
        {
            var mn = Vector512.Load(mins + s);
            var mx = Vector512.Load(maxs + s);
            if (!Vector512.EqualsAll(mn, mn) || !Vector512.EqualsAll(mx, mx)) break;
            var amax = Vector512.Max(-Vector512.Min(mn, Vector512<float>.Zero), Vector512.Max(mx, Vector512<float>.Zero));
            var scale = amax / divisor;
            if (precision == ModelPrecision.BFloat16)   // round to nearest even bf16 (no NaN can reach here)
            {
                var bits = scale.AsUInt32();
                scale = ((bits + Vector512.Create(0x7FFFu) + (Vector512.ShiftRightLogical(bits, 16) & Vector512.Create(1u))) & Vector512.Create(0xFFFF_0000u)).AsSingle();
            }
            if (GlobalScale is not null) scale = global * scale;
            scale.CopyTo(Scale, s);
        }
        var done = Scale.AsSpan(begin, s - begin);
        bool fp8Scales = args.ScaleDtype == TorchDtypes.Float8E4M3;
        if (fp8Scales)
        {
            Span<byte> e4m3 = stackalloc byte[MaxChunk];
            Float8E4M3.FromFloat32(done, e4m3, saturate: true);
            Float8E4M3.ToFloat32(e4m3[..done.Length], done);
        }
        var zeroScale = Vector512.Create(fp8Scales ? 0.125f : precision.Eps());
        for (int i = begin; i < s; i += 16)
        {
            var scale = Vector512.Create<float>(Scale.AsSpan(i, 16));
            Vector512.ConditionalSelect(Vector512.Equals(scale, Vector512<float>.Zero), zeroScale, scale).CopyTo(Scale, i);
        }
        return s;
    }
}
