using System.Buffers.Binary;
using Llmq.Algorithms;
using Llmq.Calibration;
using Llmq.Checkpoints;
using Llmq.Models;
using Llmq.Quantization;

namespace Llmq.Formats.Gguf;

/// <summary>
/// GPTQ on the block grid of ggml's symmetric 32-wide formats, so a stock GGUF holds GPTQ-optimized weights:
/// <list type="bullet">
/// <item>Q4_0: d = max / −8 (max = the signed value of largest magnitude), w = (q − 8)·d, q ∈ [0, 15];</item>
/// <item>Q8_0: d = max|x| / 127, w = q·d, q ∈ [−127, 127]: symmetric, as ggml's quantize_row_q8_0 implies (it never writes
/// −128, so no backend's kernels are tested with it; GPTQ's error feedback would otherwise reach it).</item>
/// </list>
/// Each block's d is fixed when the sweep reaches the block, from its current (error-updated) weights, and rounded to f16
/// as stored, so the blocks written from GPTQ's d and codes dequantize exactly to the Ŵ that GPTQ optimized. In
/// <see cref="QuantizationArgs"/> terms the grid is symmetric int4 / narrow-range int8 with groups of 32 and code q − 8 (Q4_0) or q.
/// </summary>
public static class GgufGptq
{
    public const int BlockWidth = 32;

    public static bool Supports(GgmlType type) => type is GgmlType.Q4_0 or GgmlType.Q8_0;

    /// <summary>The integer grid of <paramref name="type"/> as GPTQ sees it (one group per block; Q8_0 without −128).</summary>
    public static QuantizationArgs Args(GgmlType type, ActOrder actOrder)
    {
        if (!Supports(type)) throw new LlmqException($"GPTQ solves on the Q4_0 and Q8_0 grids, not {GgmlTypes.Name(type)}");
        if (actOrder == ActOrder.Group) throw new LlmqException("GGUF blocks hold consecutive columns: use activation order static or none");
        return new QuantizationArgs
        {
            NumBits = type == GgmlType.Q4_0 ? 4 : 8, NarrowRange = type == GgmlType.Q8_0, Symmetric = true,
            Strategy = QuantizationStrategy.Group, GroupSize = BlockWidth,
            ActOrder = actOrder == ActOrder.Static ? "static" : null,
        }.Validated();
    }

    /// <summary>Fixes block scales the way ggml's reference quantizers do (4 bits: Q4_0, 8 bits: Q8_0), rounded to f16.</summary>
    public static IWeightObserver Observer { get; } = new BlockObserver();

    /// <summary>ggml blocks [rows × cols/32] from GPTQ's codes (two's-complement bytes, [rows × cols]) and block scales.</summary>
    public static void Pack(GgmlType type, ReadOnlySpan<byte> codes, QParams qp, Span<byte> blocks)
    {
        int rows = qp.Rows, cols = qp.Cols, perRow = cols / BlockWidth, blockBytes = (int)GgmlTypes.RowSize(type, BlockWidth);
        if (!Supports(type) || cols % BlockWidth != 0 || qp.ScaleCols != perRow || codes.Length != rows * cols || blocks.Length != rows * perRow * blockBytes)
            throw new ArgumentException($"cannot pack [{rows}, {cols}] codes into {GgmlTypes.Name(type)} blocks");
        for (int b = 0; b < rows * perRow; b++)
        {
            var q = codes.Slice(b * BlockWidth, BlockWidth);
            var y = blocks.Slice(b * blockBytes, blockBytes);
            BinaryPrimitives.WriteUInt16LittleEndian(y, QuantMath.ToHalf(qp.Scale[b]));   // exact: the scale is an f16 value
            if (type == GgmlType.Q8_0)
                q.CopyTo(y[2..]);
            else
                for (int j = 0; j < BlockWidth / 2; j++)
                    y[2 + j] = (byte)(((sbyte)q[j] + 8) | (((sbyte)q[j + BlockWidth / 2] + 8) << 4));
        }
    }

    /// <summary>Layer-by-layer calibration and GPTQ (<see cref="SequentialPipeline"/>: Hessians from the samples, q/k/v and
    /// gate/up sharing theirs, quantized outputs propagated) for the Linears in <paramref name="typeOfModule"/> (HF module
    /// name → Q4_0 / Q8_0). Hands each layer's blocks to <paramref name="emitLayer"/> as HF tensor name → blocks in HF row
    /// order, one layer at a time.</summary>
    public static void Run(DecoderModel model, IReadOnlyList<TensorInfo> tensors, IReadOnlyDictionary<string, GgmlType> typeOfModule,
        int[][] samples, GptqOptions options, Action<int, IReadOnlyDictionary<string, byte[]>> emitLayer, IProgress<string>? progress = null,
        CancellationToken cancellation = default)
    {
        if (typeOfModule.Count == 0) throw new LlmqException("GPTQ found no Q4_0 or Q8_0 Linear to quantize");
        var groups = typeOfModule.GroupBy(m => m.Value)
            .Select(g => new QuantizationScheme { Targets = g.Select(m => m.Key).ToList(), Weights = Args(g.Key, options.ActOrder) })
            .ToList();
        var recipe = new Recipe { Method = QuantizationMethod.Gptq, Groups = groups, Ignore = [], Gptq = options with { Observer = Observer } };
        var plan = QuantizationPlan.Create(tensors, model.Config, groups, []);
        SequentialPipeline.Run(model, plan, recipe, samples, _ => DType.F32, (layer, quantized) =>
        {
            var blocks = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var q in quantized)
            {
                var type = typeOfModule[q.Module];
                var bytes = new byte[GgmlTypes.RowSize(type, q.QParams.Cols) * q.QParams.Rows];
                Pack(type, q.Codes, q.QParams, bytes);
                blocks[q.Module + ".weight"] = bytes;
            }
            emitLayer(layer, blocks);
        }, new PipelineTimings(), progress is null ? null : new LayerProgress(progress), cancellation);
    }

    sealed class LayerProgress(IProgress<string> inner) : IProgress<OneshotProgress>
    {
        public void Report(OneshotProgress value) => inner.Report("gptq: " + value.Message);
    }

    sealed class BlockObserver : IWeightObserver
    {
        const float SmallestHalf = 5.96046448e-8f; // 2⁻²⁴: a block whose d rounds to 0 keeps a finite grid (its codes then stay tiny)

        public string Name => "ggml";

        public QParams Compute(ReadOnlySpan<float> weight, int rows, int cols, QuantizationArgs args, ModelPrecision precision,
            float? globalScale = null, int[]? groupIndex = null)
        {
            // GPTQ observes one block at a time, as one channel per row
            if (args.ResolvedStrategy != QuantizationStrategy.Channel) throw new ArgumentException("ggml block scales are observed one block per row");
            var qp = new QParams(args, rows, cols);
            for (int r = 0; r < rows; r++)
            {
                float amax = 0f, max = 0f;
                foreach (var v in weight.Slice(r * cols, cols))
                    if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
                float d = QuantMath.FromHalf(QuantMath.ToHalf(args.NumBits == 4 ? max / -8 : amax / 127));
                qp.Scale[r] = d != 0 ? d : SmallestHalf;
            }
            return qp;
        }
    }
}
