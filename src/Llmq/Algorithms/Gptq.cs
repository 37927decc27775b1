using Llmq.Numerics;
using Llmq.Quantization;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        ScatterTransposed<float>(solver.WT, weight, rows, cols, perm);
        ScatterTransposed<byte>(solver.CodesT, codes, rows, cols, perm);
        ReusableArrays<float>.Return(u);
        solver.Release();

        return new GptqResult { Codes = codes, QParams = qParams, Loss = loss / 2, FellBackToRoundToNearest = fellBack };
    }

    /// <summary>U with (P H Pᵀ + λI)⁻¹ = UᵀU, written into <paramref name="h"/>. When the dampened Hessian is not positive
    /// definite the dampening grows tenfold (GPTQModel does the same); after that U = I, i.e. round to nearest.</summary>
    static unsafe (float[] U, bool FellBack) InverseFactor(Span<float> h, int cols, int[] perm, double dampeningFrac)
    {
        double meanDiag = 0;
        for (var j = 0; j < cols; j++) meanDiag += h[j * cols + j];
        meanDiag /= cols;

        // Reused between calls: a fresh 94 MB U (down_proj) costs more in page faults than its copy.
        var u = ReusableArrays<float>.Rent(cols * cols);
        var identity = perm.AsSpan().SequenceEqual(Identity(cols));
        var damp = dampeningFrac;
        for (var attempt = 0; attempt <= MaxDampeningRetries; attempt++, damp = Math.Max(damp * 10, 1e-3))
        {
            var lambda = (float)(damp * meanDiag);
            fixed (float* ph = h)
            {
                var hp = (nint)ph;
                Parallel.For(0, cols, i =>
                {
                    var src = new ReadOnlySpan<float>((float*)hp + (long)perm[i] * cols, cols);
                    if (identity) src.CopyTo(u.AsSpan(i * cols, cols));
                    else PermutedRow(src, u.AsSpan(i * cols, cols), perm);
                    u[i * cols + i] += lambda;
                });
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PermutedRow(ReadOnlySpan<float> src, Span<float> dst, int[] perm)
    {
        for (var j = 0; j < dst.Length; j++) dst[j] = src[perm[j]];
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

    const int TransposeTile = 32; // 32 rows × 32 columns: both sides of a tile stay in L1

    /// <summary>dst[j·rows + r] = src[r·cols + perm[j]] (permuted transpose into the sweep's layout), in tiles so that
    /// neither side is walked with a cache line per element; tiles of columns in parallel.</summary>
    static unsafe void GatherTransposed(ReadOnlySpan<float> src, Span<float> dst, int rows, int cols, int[] perm)
    {
        fixed (float* ps = src) fixed (float* pd = dst)
        {
            var (s, d) = ((nint)ps, (nint)pd);
            Parallel.For(0, (cols + TransposeTile - 1) / TransposeTile, tile =>
                TransposeTile32<float>((float*)s, (float*)d, rows, cols, perm, tile * TransposeTile, 0, rows, gather: true));
        }
    }

    /// <summary>The inverse of <see cref="GatherTransposed"/>: dst[r·cols + perm[j]] = src[j·rows + r]; tiles of rows in parallel.</summary>
    static unsafe void ScatterTransposed<T>(ReadOnlySpan<T> src, Span<T> dst, int rows, int cols, int[] perm) where T : unmanaged
    {
        fixed (T* ps = src) fixed (T* pd = dst)
        {
            var (s, d) = ((nint)ps, (nint)pd);
            Parallel.For(0, (rows + TransposeTile - 1) / TransposeTile, tile =>
            {
                for (var j0 = 0; j0 < cols; j0 += TransposeTile)
                    TransposeTile32((T*)s, (T*)d, rows, cols, perm, j0, tile * TransposeTile, Math.Min(rows, (tile + 1) * TransposeTile), gather: false);
            });
        }
    }

    /// <summary>Permuted columns [j0, j0 + 32) × rows [r0, r1) (all 32-row tiles in between) of the row-major [rows × cols] side
    /// against the transposed [cols × rows] side: gather reads the first into the second, scatter the reverse.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // once per tile: never leave it to tier-0 code
    static unsafe void TransposeTile32<T>(T* src, T* dst, int rows, int cols, int[] perm, int j0, int r0, int r1, bool gather) where T : unmanaged
    {
        var j1 = Math.Min(j0 + TransposeTile, cols);
        for (var t0 = r0; t0 < r1; t0 += TransposeTile)
        {
            var t1 = Math.Min(t0 + TransposeTile, r1);
            if (gather)
                for (var j = j0; j < j1; j++)
                    for (int r = t0, c = perm[j]; r < t1; r++)
                        dst[(long)j * rows + r] = src[(long)r * cols + c];
            else
                for (var r = t0; r < t1; r++)
                    for (var j = j0; j < j1; j++)
                        dst[(long)r * cols + perm[j]] = src[(long)j * rows + r];
        }
    }

    /// <summary>One column's quantize-and-error step over a run of rows: w ← (q − zp)·scale with q on the integer grid,
    /// e ← (w − ŵ)/d, codes ← q; scale and zero point per row. Vectorized; bit for bit <see cref="Reference.QuantizeColumn"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: never leave it to tier-0 code
    internal static void QuantizeColumn(Span<float> w, Span<float> e, Span<byte> codes, ReadOnlySpan<float> scale, ReadOnlySpan<float> zeroPoint,
        float d, QuantizationArgs args)
    {
        var n = w.Length;
        if (e.Length < n || codes.Length < n || scale.Length < n || zeroPoint.Length < n) throw new ArgumentException("spans shorter than the weight run");
        ref var pw = ref MemoryMarshal.GetReference(w);
        ref var pe = ref MemoryMarshal.GetReference(e);
        ref var ps = ref MemoryMarshal.GetReference(scale);
        ref var pz = ref MemoryMarshal.GetReference(zeroPoint);
        ref var pc = ref MemoryMarshal.GetReference(codes);
        var r = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> lo = Vector512.Create(args.QMin), hi = Vector512.Create(args.QMax), dv = Vector512.Create(d);
            for (; r <= n - Vector512<float>.Count; r += Vector512<float>.Count)
            {
                var (x, s, z) = (Vector512.LoadUnsafe(ref pw, (nuint)r), Vector512.LoadUnsafe(ref ps, (nuint)r), Vector512.LoadUnsafe(ref pz, (nuint)r));
                var t = x / s + z;
                // Math.Clamp's exact order of tests, then round half to even (MathF.Round's ToEven).
                t = Vector512.ConditionalSelect(Vector512.LessThan(t, lo), lo, t);
                var code = Vector512.Round(Vector512.ConditionalSelect(Vector512.GreaterThan(t, hi), hi, t));
                var q = (code - z) * s;
                ((x - q) / dv).StoreUnsafe(ref pe, (nuint)r);
                q.StoreUnsafe(ref pw, (nuint)r);
                var c16 = Vector512.Narrow(Vector512.ConvertToInt32(code), Vector512<int>.Zero);
                Vector512.Narrow(c16, Vector512<short>.Zero).AsByte().GetLower().GetLower().StoreUnsafe(ref pc, (nuint)r);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> lo = Vector256.Create(args.QMin), hi = Vector256.Create(args.QMax), dv = Vector256.Create(d);
            for (; r <= n - Vector256<float>.Count; r += Vector256<float>.Count)
            {
                var (x, s, z) = (Vector256.LoadUnsafe(ref pw, (nuint)r), Vector256.LoadUnsafe(ref ps, (nuint)r), Vector256.LoadUnsafe(ref pz, (nuint)r));
                var t = x / s + z;
                t = Vector256.ConditionalSelect(Vector256.LessThan(t, lo), lo, t);
                var code = Vector256.Round(Vector256.ConditionalSelect(Vector256.GreaterThan(t, hi), hi, t));
                var q = (code - z) * s;
                ((x - q) / dv).StoreUnsafe(ref pe, (nuint)r);
                q.StoreUnsafe(ref pw, (nuint)r);
                var c16 = Vector256.Narrow(Vector256.ConvertToInt32(code), Vector256<int>.Zero);
                Vector256.Narrow(c16, Vector256<short>.Zero).AsByte().GetLower().GetLower().StoreUnsafe(ref pc, (nuint)r);
            }
        }
        Reference.QuantizeColumn(w[r..n], e[r..n], codes[r..n], scale[r..n], zeroPoint[r..n], d, args);
    }

    /// <summary>The in-block error feedback w_k ← e·(−U[i,k]) + w_k for the block's columns k after i; column k − i − 1 starts at
    /// w[(k − i − 1)·stride]. Rounds as TensorPrimitives.MultiplyAdd (a product, then a sum; zeros of U skipped, so −0 stays),
    /// but loads each run of e once for all the columns. Bit for bit <see cref="Reference.SpreadError"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void SpreadError(ReadOnlySpan<float> e, ReadOnlySpan<float> u, Span<float> w, int stride)
    {
        var n = e.Length;
        if (u.Length > 0 && w.Length < (long)(u.Length - 1) * stride + n) throw new ArgumentException("weight span too short for the columns");
        ref var pe = ref MemoryMarshal.GetReference(e);
        ref var pw = ref MemoryMarshal.GetReference(w);
        var r = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; r <= n - Vector512<float>.Count; r += Vector512<float>.Count)
            {
                var ev = Vector512.LoadUnsafe(ref pe, (nuint)r);
                for (var k = 0; k < u.Length; k++)
                {
                    if (u[k] == 0) continue;
                    var at = (nuint)(k * stride + r);
                    (ev * Vector512.Create(-u[k]) + Vector512.LoadUnsafe(ref pw, at)).StoreUnsafe(ref pw, at);
                }
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; r <= n - Vector256<float>.Count; r += Vector256<float>.Count)
            {
                var ev = Vector256.LoadUnsafe(ref pe, (nuint)r);
                for (var k = 0; k < u.Length; k++)
                {
                    if (u[k] == 0) continue;
                    var at = (nuint)(k * stride + r);
                    (ev * Vector256.Create(-u[k]) + Vector256.LoadUnsafe(ref pw, at)).StoreUnsafe(ref pw, at);
                }
            }
        if (r < n) Reference.SpreadError(e[r..], u, w[r..], stride);
    }

    /// <summary>Scalar definitions the vectorized code is tested against.</summary>
    internal static class Reference
    {
        public static void SpreadError(ReadOnlySpan<float> e, ReadOnlySpan<float> u, Span<float> w, int stride)
        {
            for (var k = 0; k < u.Length; k++)
            {
                if (u[k] == 0) continue;
                var wk = w.Slice(k * stride, e.Length);
                TensorPrimitives.MultiplyAdd(e, -u[k], wk, wk);
            }
        }

        public static void QuantizeColumn(Span<float> w, Span<float> e, Span<byte> codes, ReadOnlySpan<float> scale, ReadOnlySpan<float> zeroPoint,
            float d, QuantizationArgs args)
        {
            for (var r = 0; r < w.Length; r++)
            {
                float s = scale[r], zp = zeroPoint[r];
                var code = FakeQuant.Reference.Grid(w[r], s, zp, args);
                var q = (code - zp) * s;
                e[r] = (w[r] - q) / d;
                codes[r] = (byte)(sbyte)code;
                w[r] = q;
            }
        }
    }

    /// <summary>The column sweep over the transposed, permuted weight WT [cols × rows] (column j of W is the contiguous
    /// row j of WT), so every per-column step is a contiguous vector operation.</summary>
    sealed class Sweep
    {
        public readonly float[] WT;
        public readonly byte[] CodesT;

        readonly int _rows, _cols, _groups, _maxMembers;
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
        readonly float[] _scaleT, _zeroT; // [groups × rows]: the qparams of _qp, group-major so a column's are contiguous (zeros when symmetric)

        public Sweep(Span<float> weight, int rows, int cols, float[] u, int[] perm, QuantizationArgs args, ModelPrecision precision,
            QParams qp, int groupSize, ActOrder actOrder, GptqOptions options)
        {
            _rows = rows; _cols = cols; _u = u; _args = args; _precision = precision; _qp = qp; _options = options;
            _groups = qp.ScaleCols;
            // A group's qparams come from the observer run over that group alone, i.e. as one channel per row (as llm-compressor does).
            _channelArgs = args with { Strategy = QuantizationStrategy.Channel, GroupSize = null, ActOrder = null };
            _observer = options.Observer ?? Observers.ForWeights(args);
            var groups = _groups;
            WT = ReusableArrays<float>.Rent(cols * rows);
            GatherTransposed(weight, WT, rows, cols, perm);
            CodesT = ReusableArrays<byte>.Rent(cols * rows); // every element written by the sweep
            _errors = ReusableArrays<float>.Rent(Math.Min(options.BlockSize, cols) * rows); // written before read, block by block
            _scaleT = new float[groups * rows];
            _zeroT = new float[groups * rows];

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
            for (var g = 0; g < groups; g++) _maxMembers = Math.Max(_maxMembers, _memberStart[g + 1]);
            for (var g = 0; g < groups; g++) _memberStart[g + 1] += _memberStart[g];
            _members = new int[cols];
            var fill = (int[])_memberStart.Clone();
            for (var j = 0; j < cols; j++) _members[fill[_groupOf[j]]++] = j;
        }

        /// <summary>Hands the large work arrays back for the next call; the sweep is done with.</summary>
        public void Release()
        {
            ReusableArrays<float>.Return(WT);
            ReusableArrays<byte>.Return(CodesT);
            ReusableArrays<float>.Return(_errors);
        }

        public unsafe double Run()
        {
            var chunks = Math.Max(1, Math.Min(Environment.ProcessorCount * 2, _rows / 32));
            var chunkLoss = new double[chunks];
            // Per chunk, reused by every group: the group's values [rows × members] and one column.
            var scratch = new float[chunks][];
            for (var c = 0; c < chunks; c++) scratch[c] = new float[(Chunk(c, chunks).R1 - Chunk(c, chunks).R0) * (_maxMembers + 1)];
            if (_options.GroupQParams == GroupQParams.BeforeSweep)
                Parallel.For(0, chunks, c => { for (var g = 0; g < _groups; g++) FixGroup(g, 0, 0, Chunk(c, chunks), scratch[c]); });

            for (var i1 = 0; i1 < _cols; i1 += _options.BlockSize)
            {
                var i2 = Math.Min(i1 + _options.BlockSize, _cols);
                Parallel.For(0, chunks, c => chunkLoss[c] += SweepBlock(i1, i2, Chunk(c, chunks), scratch[c]));
                if (i2 == _cols) break;

                // Lazy update of everything right of the block: WT[i2:, :] −= U[i1:i2, i2:]ᵀ · E (the one big GEMM), U read in place.
                int m = _cols - i2, k = i2 - i1;
                fixed (float* pu = _u) fixed (float* pe = _errors) fixed (float* pw = WT)
                    Gemm.Multiply(new(pu + (long)i1 * _cols + i2, 1, _cols), new(pe, _rows, 1), pw + (long)i2 * _rows, _rows, m, _rows, k,
                        -1f, true, Gemm.Fill.Full);
            }
            return chunkLoss.Sum();
        }

        const int TileRows = 256; // weights and errors of a 128-column block over 256 rows: 256 KiB

        (int R0, int R1) Chunk(int c, int chunks) => ((int)((long)_rows * c / chunks), (int)((long)_rows * (c + 1) / chunks));

        /// <summary>Block [i1, i2) over the chunk's rows, in tiles of rows so that the block's weights and errors stay in
        /// L2 across its columns; returns the chunk's share of the loss, summed column by column.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        double SweepBlock(int i1, int i2, (int R0, int R1) chunk, float[] scratch)
        {
            for (var r0 = chunk.R0; r0 < chunk.R1; r0 += TileRows)
            {
                var tile = (R0: r0, R1: Math.Min(r0 + TileRows, chunk.R1));
                var n = tile.R1 - r0;
                for (var i = i1; i < i2; i++)
                {
                    var g = _groupOf[i];
                    if (_options.GroupQParams == GroupQParams.AtGroupStart && _firstColumn[g] == i) FixGroup(g, i1, i, tile, scratch);

                    var e = _errors.AsSpan((i - i1) * _rows + r0, n);
                    QuantizeColumn(WT.AsSpan(i * _rows + r0, n), e, CodesT.AsSpan(i * _rows + r0, n), _scaleT.AsSpan(g * _rows + r0, n),
                        _zeroT.AsSpan(g * _rows + r0, n), _u[i * _cols + i], _args);
                    if (i + 1 < i2)
                        SpreadError(e, _u.AsSpan(i * _cols + i + 1, i2 - i - 1), WT.AsSpan((i + 1) * _rows + r0), _rows);
                }
            }
            double loss = 0;
            for (var i = i1; i < i2; i++)
                foreach (var err in _errors.AsSpan((i - i1) * _rows + chunk.R0, chunk.R1 - chunk.R0)) loss += (double)err * err;
            return loss;
        }

        /// <summary>Fixes the scale and zero point of group g for rows [r0, r1) from the group's current weights. Sweep
        /// position i in block [i1, …): columns right of the block still miss the block's pending lazy update
        /// −Σ_{p∈[i1,i)} U[p, c]·E[p], which is applied here to a copy.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void FixGroup(int g, int i1, int i, (int R0, int R1) rowRange, float[] scratch)
        {
            var (r0, r1) = rowRange;
            var n = r1 - r0;
            var blockEnd = Math.Min(i1 + _options.BlockSize, _cols);
            var count = _memberStart[g + 1] - _memberStart[g];
            var values = scratch.AsSpan(0, n * count); // [row × member]
            var column = scratch.AsSpan(n * count, n);
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
                _qp.Scale[(r0 + r) * _groups + g] = _scaleT[g * _rows + r0 + r] = qp.Scale[r];
                if (_qp.ZeroPoint is not null) _qp.ZeroPoint[(r0 + r) * _groups + g] = _zeroT[g * _rows + r0 + r] = qp.ZeroPointOf(r);
            }
        }
    }
}
