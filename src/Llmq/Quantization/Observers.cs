using System.Numerics.Tensors;

namespace Llmq.Quantization;

/// <summary>
/// Computes a weight's <see cref="QParams"/> from the weight itself (llm-compressor's memoryless weight observers, spec §4.4).
/// Set <see cref="QParams.GlobalScale"/>-relevant input through <paramref name="globalScale"/> (tensor_group: the fused set's
/// <c>2688 / amax</c>; null computes it from this weight alone).
/// </summary>
public interface IWeightObserver
{
    /// <summary>The observer name written in <c>QuantizationArgs.observer</c>.</summary>
    string Name { get; }

    QParams Compute(ReadOnlySpan<float> weight, int rows, int cols, QuantizationArgs args, ModelPrecision precision,
        float? globalScale = null, int[]? groupIndex = null);
}

/// <summary>Observer lookup by the names compressed-tensors uses; weights are observed once, so running-average observers
/// become their memoryless forms (as llm-compressor does).</summary>
public static class Observers
{
    public static IWeightObserver ForWeights(QuantizationArgs args) => args.Observer switch
    {
        null or "minmax" or "memoryless_minmax" or "static_minmax" or "memoryless" => MinMaxObserver.Instance,
        "mse" or "memoryless_mse" => MseObserver.FromKwargs(args.ObserverKwargs),
        var other => throw new LlmqException($"unsupported weight observer '{other}' (supported: memoryless_minmax, minmax, mse, memoryless_mse)"),
    };

    /// <summary>Per-slot minima and maxima of a weight (rows in parallel, reductions vectorized).</summary>
    public static void SlotMinMax(ReadOnlySpan<float> weight, QParams qp, Span<float> mins, Span<float> maxs)
    {
        if (qp.RowsPerSlot == 1 && qp.GroupIndex is null && qp.SlotCount > 1)
        {
            SlotMinMaxKernels.RowSlots(weight, qp, mins, maxs);
            return;
        }
        mins.Fill(float.PositiveInfinity);
        maxs.Fill(float.NegativeInfinity);
        if (qp.SlotCount == 1)
        {
            mins[0] = TensorPrimitives.Min(weight);
            maxs[0] = TensorPrimitives.Max(weight);
            return;
        }
        var mn = new float[qp.SlotCount];
        var mx = new float[qp.SlotCount];
        Array.Fill(mn, float.PositiveInfinity);
        Array.Fill(mx, float.NegativeInfinity);
        unsafe
        {
            fixed (float* w = weight)
            {
                float* wp = w;
                // Slots spanning several rows (block) are only ever touched by one row chunk when chunks align to block rows.
                ForSlotRows(qp, (r, c0, len, slot) =>
                {
                    var seg = new ReadOnlySpan<float>(wp + (long)r * qp.Cols + c0, len);
                    float lo = len == 1 ? seg[0] : TensorPrimitives.Min(seg), hi = len == 1 ? seg[0] : TensorPrimitives.Max(seg);
                    if (lo < mn[slot]) mn[slot] = lo;
                    if (hi > mx[slot]) mx[slot] = hi;
                });
            }
        }
        mn.CopyTo(mins);
        mx.CopyTo(maxs);
    }

    /// <summary>Like <see cref="FakeQuant.ForRows"/>, but parallel tasks own whole slot-row bands so that per-slot accumulators need no locks.</summary>
    internal static void ForSlotRows(QParams qp, Action<int, int, int, int> segment)
    {
        int bands = (qp.Rows + qp.RowsPerSlot - 1) / qp.RowsPerSlot;
        int perTask = Math.Max(1, (int)Math.Min(bands, (1L << 16) / ((long)qp.Cols * qp.RowsPerSlot) + 1));
        Parallel.For(0, (bands + perTask - 1) / perTask, t =>
        {
            int r0 = t * perTask * qp.RowsPerSlot, r1 = Math.Min(qp.Rows, (t + 1) * perTask * qp.RowsPerSlot);
            for (int r = r0; r < r1; r++)
            {
                if (qp.GroupIndex is not null)
                {
                    for (int c = 0; c < qp.Cols; c++) segment(r, c, 1, qp.Slot(r, c));
                    continue;
                }
                for (int c0 = 0; c0 < qp.Cols; c0 += qp.ColsPerSlot)
                    segment(r, c0, Math.Min(qp.ColsPerSlot, qp.Cols - c0), qp.Slot(r, c0));
            }
        });
    }

    /// <summary>The global scale of a tensor_group weight when none is given: from this weight's own absolute maximum.</summary>
    internal static float? GlobalScaleFor(ReadOnlySpan<float> weight, QuantizationArgs args, float? given) =>
        args.HasGlobalScale ? given ?? QParams.TensorGroupGlobalScale(TensorPrimitives.MaxMagnitude(weight) is var m ? MathF.Abs(m) : 0f) : null;
}

/// <summary>Min-max observer (<c>memoryless_minmax</c>): the scale covers each slot's full range.</summary>
public sealed class MinMaxObserver : IWeightObserver
{
    public static readonly MinMaxObserver Instance = new();
    public string Name => "memoryless_minmax";

    public QParams Compute(ReadOnlySpan<float> weight, int rows, int cols, QuantizationArgs args, ModelPrecision precision,
        float? globalScale = null, int[]? groupIndex = null)
    {
        var qp = new QParams(args, rows, cols, groupIndex) { GlobalScale = Observers.GlobalScaleFor(weight, args, globalScale) };
        var mins = ReusableArrays<float>.Rent(qp.SlotCount);
        var maxs = ReusableArrays<float>.Rent(qp.SlotCount);
        Observers.SlotMinMax(weight, qp, mins, maxs);
        qp.SetFromMinMax(mins, maxs, args, precision);
        ReusableArrays<float>.Return(mins);
        ReusableArrays<float>.Return(maxs);
        return qp;
    }
}

/// <summary>
/// MSE observer (<c>memoryless_mse</c>, spec §4.4): per slot, shrink the range by <c>p = 1 − i/grid</c> for
/// <c>i &lt; maxshrink·grid</c>, fake-quantize with the candidate qparams (no global scale, no FP8 scale rounding), score
/// <c>Σ|x̂ − x|^norm</c> and keep the first strictly best; all slots advance together and the search stops after
/// <c>patience</c> candidates that improved no slot. The chosen ranges then give the final qparams (with the global scale).
/// </summary>
public sealed class MseObserver : IWeightObserver
{
    public double MaxShrink { get; init; } = 0.20;
    public double Grid { get; init; } = 100;
    public double Norm { get; init; } = 2.4;
    public int Patience { get; init; } = 5;
    public double Expand { get; init; } = 1.0;

    public string Name => "memoryless_mse";

    public static MseObserver FromKwargs(IReadOnlyDictionary<string, double> kw) => new()
    {
        MaxShrink = kw.GetValueOrDefault("maxshrink", 0.20),
        Grid = kw.GetValueOrDefault("grid", 100),
        Norm = kw.GetValueOrDefault("norm", 2.4),
        Patience = (int)kw.GetValueOrDefault("patience", 5),
        Expand = kw.GetValueOrDefault("expand", 1.0),
    };

    public QParams Compute(ReadOnlySpan<float> weight, int rows, int cols, QuantizationArgs args, ModelPrecision precision,
        float? globalScale = null, int[]? groupIndex = null)
    {
        var qp = new QParams(args, rows, cols, groupIndex) { GlobalScale = Observers.GlobalScaleFor(weight, args, globalScale) };
        int n = qp.SlotCount;
        var min0 = new float[n];
        var max0 = new float[n];
        Observers.SlotMinMax(weight, qp, min0, max0);
        for (int s = 0; s < n; s++) { min0[s] *= (float)Expand; max0[s] *= (float)Expand; }
        var bestErr = new double[n];
        Array.Fill(bestErr, double.MaxValue);
        var bestMin = (float[])min0.Clone();
        var bestMax = (float[])max0.Clone();
        var candScale = new float[n];
        var candZp = new float[n];
        var err = new double[n];
        int steps = (int)(MaxShrink * Grid), stale = 0;
        float norm = (float)Norm;
        unsafe
        {
            fixed (float* w = weight)
            {
                float* wp = w;
                for (int i = 0; i < steps; i++)
                {
                    float p = (float)(1 - i / Grid);
                    for (int s = 0; s < n; s++)
                        (candScale[s], candZp[s]) = QParams.ComputeSlot(p * min0[s], p * max0[s], args, precision, null, roundToScaleDtype: false);
                    Array.Clear(err);
                    Observers.ForSlotRows(qp, (r, c0, len, slot) =>
                    {
                        var seg = new ReadOnlySpan<float>(wp + (long)r * qp.Cols + c0, len);
                        double e = 0;
                        float sc = candScale[slot], zp = candZp[slot];
                        foreach (float x in seg)
                            e += MathF.Pow(MathF.Abs(FakeQuant.QuantizeDequantizeValue(x, sc, zp, args) - x), norm);
                        err[slot] += e;
                    });
                    bool improved = false;
                    for (int s = 0; s < n; s++)
                    {
                        if (err[s] < bestErr[s])
                        {
                            bestErr[s] = err[s];
                            bestMin[s] = p * min0[s];
                            bestMax[s] = p * max0[s];
                            improved = true;
                        }
                    }
                    stale = improved ? 0 : stale + 1;
                    if (stale >= Patience) break;
                }
            }
        }
        qp.SetFromMinMax(bestMin, bestMax, args, precision);
        return qp;
    }
}
