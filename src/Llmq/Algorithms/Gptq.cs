using Llmq.Numerics;
using Llmq.Quantization;
using System.Numerics.Tensors;

namespace Llmq.Algorithms;

/// <summary>What <see cref="Gptq.Quantize"/> produced for one Linear weight.</summary>
public sealed class GptqResult
{
    /// <summary>Integer codes q ∈ [qmin, qmax] as two's-complement bytes (<see cref="FakeQuant"/>'s convention),
    /// [rows × cols], original column order.</summary>
    public required byte[] Codes { get; init; }

    /// <summary>Scales and zero points, one slot per row and group; <see cref="QParams.GroupIndex"/> is set for
    /// <see cref="ActOrder.Group"/> (otherwise group = column / group size). Dequantized w = (q − zp) · scale.</summary>
    public required QParams QParams { get; init; }

    /// <summary>Σ over rows and columns of (w − q)² / (2 · U[j,j]²): GPTQ's own estimate of the added output error.</summary>
    public double Loss { get; init; }

    /// <summary>True when the Hessian stayed indefinite even after more dampening, so the weight was rounded to nearest.</summary>
    public bool FellBackToRoundToNearest { get; init; }
}

/// <summary>GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"):
/// quantize a Linear weight W [rows × cols] column by column, each time spreading the rounding error over the
/// not-yet-quantized columns so that ‖XWᵀ − XŴᵀ‖² stays small for the calibration inputs X, whose Hessian is H = 2/n·XᵀX.
/// Follows ../shared/spec/compressed-tensors.md §6.1: dead inputs, relative dampening, the upper Cholesky factor U of
/// H⁻¹, lazy block updates, activation order. Rows are independent of each other, which is what the parallel sweep uses.</summary>
public static class Gptq
{
    const int MaxDampeningRetries = 2; // dampening 1×, 10×, 100× the requested one (0.01 → 1.0 of the mean diagonal)

    /// <summary>Quantizes <paramref name="weight"/> in place (it ends as the dequantized weight Ŵ) and returns the codes
    /// and quantization parameters. <paramref name="hessian"/> [cols × cols] is used as workspace and left overwritten.
    /// <paramref name="precision"/> is the model dtype, in which scales are computed and stored (spec §4.2).</summary>
    public static GptqResult Quantize(Span<float> weight, int rows, int cols, Span<float> hessian, GptqOptions options, QuantizationArgs args,
        ModelPrecision precision = ModelPrecision.Float32)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(args);
        if (weight.Length < (long)rows * cols) throw new ArgumentException($"weight has {weight.Length} elements, {rows}×{cols} expected", nameof(weight));
        if (hessian.Length < (long)cols * cols) throw new ArgumentException($"hessian has {hessian.Length} elements, {cols}×{cols} expected", nameof(hessian));
        if (options.BlockSize <= 0) throw new LlmqException($"GPTQ block_size must be positive, got {options.BlockSize}");
        if (!(options.DampeningFrac >= 0)) throw new LlmqException($"GPTQ dampening_frac must be ≥ 0, got {options.DampeningFrac}");

        if (args.Type != QuantizationType.Int || args.NumBits is < 2 or > 8)
            throw new LlmqException($"GPTQ quantizes to 2–8 bit integers, not {args.Type} {args.NumBits}-bit");
        var groupSize = args.ResolvedStrategy switch
        {
            QuantizationStrategy.Channel => cols,
            QuantizationStrategy.Group when args.GroupSize is > 0 => args.GroupSize.Value,
            var s => throw new LlmqException($"GPTQ supports the channel and group strategies, not {QuantizationArgs.Name(s)}"),
        };
        var actOrder = options.ActOrder == ActOrder.Group && args.ResolvedStrategy != QuantizationStrategy.Group ? ActOrder.None : options.ActOrder;

        var h = hessian[..(cols * cols)];
        // Dead inputs (never active in calibration): nothing to learn, quantize them to zero.
        for (var j = 0; j < cols; j++)
        {
            if (h[j * cols + j] != 0) continue;
            h[j * cols + j] = 1;
            for (var r = 0; r < rows; r++) weight[r * cols + j] = 0;
        }

        var perm = actOrder == ActOrder.None ? Identity(cols) : DescendingDiagonalOrder(h, cols);
        var (u, fellBack) = InverseFactor(h, cols, perm, options.DampeningFrac);

        int[]? gIdx = null;
        if (actOrder == ActOrder.Group)
        {
            gIdx = new int[cols];
            for (var j = 0; j < cols; j++) gIdx[perm[j]] = j / groupSize;
        }
        var qParams = new QParams(args, rows, cols, gIdx);
        var solver = new Sweep(weight, rows, cols, u, perm, args, precision, qParams, groupSize, actOrder, options);
        var loss = solver.Run();

        var codes = new byte[rows * cols];
        for (var j = 0; j < cols; j++)
        {
            var c = perm[j];
            for (var r = 0; r < rows; r++)
            {
                weight[r * cols + c] = solver.WT[j * rows + r];
                codes[r * cols + c] = solver.CodesT[j * rows + r];
            }
        }

        return new GptqResult { Codes = codes, QParams = qParams, Loss = loss / 2, FellBackToRoundToNearest = fellBack };
    }

    /// <summary>U with (P H Pᵀ + λI)⁻¹ = UᵀU, written into <paramref name="h"/>. When the dampened Hessian is not positive
    /// definite the dampening grows tenfold (GPTQModel does the same); after that U = I, i.e. round to nearest.</summary>
    static (float[] U, bool FellBack) InverseFactor(Span<float> h, int cols, int[] perm, double dampeningFrac)
    {
        double meanDiag = 0;
        for (var j = 0; j < cols; j++) meanDiag += h[j * cols + j];
        meanDiag /= cols;

        var u = new float[cols * cols];
        var damp = dampeningFrac;
        for (var attempt = 0; attempt <= MaxDampeningRetries; attempt++, damp = Math.Max(damp * 10, 1e-3))
        {
            for (var i = 0; i < cols; i++)
            {
                var src = perm[i] * cols;
                for (var j = 0; j < cols; j++) u[i * cols + j] = h[src + perm[j]];
                u[i * cols + i] += (float)(damp * meanDiag);
            }
            try
            {
                Cholesky.UpperCholeskyOfInverse(u, cols);
                return (u, false);
            }
            catch (NotPositiveDefiniteException)
            {
            }
        }
        Array.Clear(u);
        for (var i = 0; i < cols; i++) u[i * cols + i] = 1;
        return (u, true);
    }

    static int[] Identity(int n)
    {
        var p = new int[n];
        for (var i = 0; i < n; i++) p[i] = i;
        return p;
    }

    /// <summary>argsort of diag(H), descending; ties keep the column order (stable), so results are reproducible.</summary>
    static int[] DescendingDiagonalOrder(ReadOnlySpan<float> h, int cols)
    {
        var diag = new float[cols];
        for (var j = 0; j < cols; j++) diag[j] = h[j * cols + j];
        var p = Identity(cols);
        Array.Sort(p, (a, b) => diag[a] != diag[b] ? diag[b].CompareTo(diag[a]) : a.CompareTo(b));
        return p;
    }

    /// <summary>The column sweep over the transposed, permuted weight WT [cols × rows] (column j of W is the contiguous
    /// row j of WT), so every per-column step is a contiguous vector operation.</summary>
    sealed class Sweep
    {
        public readonly float[] WT;
        public readonly byte[] CodesT;

        readonly int _rows, _cols, _groups;
        readonly float[] _u;
        readonly QuantizationArgs _args, _channelArgs;
        readonly ModelPrecision _precision;
        readonly IWeightObserver _observer;
        readonly QParams _qp;
        readonly GptqOptions _options;
        readonly int[] _groupOf;      // permuted column → group
        readonly int[] _firstColumn;  // group → first permuted column that belongs to it
        readonly int[] _memberStart;  // CSR: permuted columns of group g are _members[_memberStart[g] .. _memberStart[g+1])
        readonly int[] _members;
        readonly float[] _errors;     // E [blockSize × rows]: scaled errors of the current block

        public Sweep(Span<float> weight, int rows, int cols, float[] u, int[] perm, QuantizationArgs args, ModelPrecision precision,
            QParams qp, int groupSize, ActOrder actOrder, GptqOptions options)
        {
            _rows = rows; _cols = cols; _u = u; _args = args; _precision = precision; _qp = qp; _options = options;
            _groups = qp.ScaleCols;
            // A group's qparams come from the observer run over that group alone, i.e. as one channel per row (as llm-compressor does).
            _channelArgs = args with { Strategy = QuantizationStrategy.Channel, GroupSize = null, ActOrder = null };
            _observer = options.Observer ?? Observers.ForWeights(args);
            var groups = _groups;
            WT = new float[cols * rows];
            for (var r = 0; r < rows; r++)
                for (var j = 0; j < cols; j++)
                    WT[j * rows + r] = weight[r * cols + perm[j]];
            CodesT = new byte[cols * rows];
            _errors = new float[Math.Min(options.BlockSize, cols) * rows];

            _groupOf = new int[cols];
            for (var j = 0; j < cols; j++) _groupOf[j] = (actOrder == ActOrder.Group ? j : perm[j]) / groupSize;
            _firstColumn = new int[groups];
            Array.Fill(_firstColumn, -1);
            _memberStart = new int[groups + 1];
            for (var j = 0; j < cols; j++)
            {
                if (_firstColumn[_groupOf[j]] < 0) _firstColumn[_groupOf[j]] = j;
                _memberStart[_groupOf[j] + 1]++;
            }
            for (var g = 0; g < groups; g++) _memberStart[g + 1] += _memberStart[g];
            _members = new int[cols];
            var fill = (int[])_memberStart.Clone();
            for (var j = 0; j < cols; j++) _members[fill[_groupOf[j]]++] = j;
        }

        public double Run()
        {
            var chunks = Math.Max(1, Math.Min(Environment.ProcessorCount * 2, _rows / 32));
            var chunkLoss = new double[chunks];
            if (_options.GroupQParams == GroupQParams.BeforeSweep)
                Parallel.For(0, chunks, c => { var (r0, r1) = Chunk(c, chunks); for (var g = 0; g < _groups; g++) FixGroup(g, 0, 0, r0, r1); });

            var trailing = new float[Math.Max(0, _cols - Math.Min(_options.BlockSize, _cols)) * Math.Min(_options.BlockSize, _cols)];
            for (var i1 = 0; i1 < _cols; i1 += _options.BlockSize)
            {
                var i2 = Math.Min(i1 + _options.BlockSize, _cols);
                Parallel.For(0, chunks, c => { var (r0, r1) = Chunk(c, chunks); chunkLoss[c] += SweepBlock(i1, i2, r0, r1); });
                if (i2 == _cols) break;

                // Lazy update of everything right of the block: WT[i2:, :] −= U[i1:i2, i2:]ᵀ · E (the one big GEMM).
                int m = _cols - i2, k = i2 - i1;
                for (var j = 0; j < m; j++)
                    for (var p = 0; p < k; p++)
                        trailing[j * k + p] = -_u[(i1 + p) * _cols + i2 + j];
                Gemm.MatMul(trailing.AsSpan(0, m * k), _errors.AsSpan(0, k * _rows), WT.AsSpan(i2 * _rows), m, _rows, k, accumulate: true);
            }
            return chunkLoss.Sum();
        }

        (int R0, int R1) Chunk(int c, int chunks) => ((int)((long)_rows * c / chunks), (int)((long)_rows * (c + 1) / chunks));

        double SweepBlock(int i1, int i2, int r0, int r1)
        {
            var n = r1 - r0;
            double loss = 0;
            for (var i = i1; i < i2; i++)
            {
                var g = _groupOf[i];
                if (_options.GroupQParams == GroupQParams.AtGroupStart && _firstColumn[g] == i) FixGroup(g, i1, i, r0, r1);

                var w = WT.AsSpan(i * _rows + r0, n);
                var e = _errors.AsSpan((i - i1) * _rows + r0, n);
                var codes = CodesT.AsSpan(i * _rows + r0, n);
                var d = _u[i * _cols + i];
                for (var r = 0; r < n; r++)
                {
                    var slot = (r0 + r) * _groups + g;
                    float scale = _qp.Scale[slot], zp = _qp.ZeroPointOf(slot);
                    var code = FakeQuant.Reference.Grid(w[r], scale, zp, _args);
                    var q = (code - zp) * scale;
                    var err = (w[r] - q) / d;
                    loss += (double)err * err;
                    codes[r] = (byte)(sbyte)code;
                    w[r] = q;
                    e[r] = err;
                }
                for (var k = i + 1; k < i2; k++)
                {
                    var uik = _u[i * _cols + k];
                    if (uik == 0) continue;
                    var wk = WT.AsSpan(k * _rows + r0, n);
                    TensorPrimitives.MultiplyAdd(e, -uik, wk, wk);
                }
            }
            return loss;
        }

        /// <summary>Fixes the scale and zero point of group g for rows [r0, r1) from the group's current weights. Sweep
        /// position i in block [i1, …): columns right of the block still miss the block's pending lazy update
        /// −Σ_{p∈[i1,i)} U[p, c]·E[p], which is applied here to a copy.</summary>
        void FixGroup(int g, int i1, int i, int r0, int r1)
        {
            var n = r1 - r0;
            var blockEnd = Math.Min(i1 + _options.BlockSize, _cols);
            var count = _memberStart[g + 1] - _memberStart[g];
            var column = new float[n];
            var values = new float[n * count]; // [row × member]
            for (var t = 0; t < count; t++)
            {
                var c = _members[_memberStart[g] + t];
                WT.AsSpan(c * _rows + r0, n).CopyTo(column);
                if (c >= blockEnd)
                    for (var p = i1; p < i; p++)
                        TensorPrimitives.MultiplyAdd(_errors.AsSpan((p - i1) * _rows + r0, n), -_u[p * _cols + c], column, column);
                for (var r = 0; r < n; r++) values[r * count + t] = column[r];
            }
            var qp = _observer.Compute(values, n, count, _channelArgs, _precision);
            for (var r = 0; r < n; r++)
            {
                _qp.Scale[(r0 + r) * _groups + g] = qp.Scale[r];
                if (_qp.ZeroPoint is not null) _qp.ZeroPoint[(r0 + r) * _groups + g] = qp.ZeroPointOf(r);
            }
        }
    }
}
