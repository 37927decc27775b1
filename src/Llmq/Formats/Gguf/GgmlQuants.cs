using System.Runtime.InteropServices;

namespace Llmq.Formats.Gguf;

/// <summary>Quantizes float32 rows into ggml block types and back — the one place that dispatches on
/// <see cref="GgmlType"/>. Rows are independent in every ggml quantizer (the importance-weighted ones normalize by
/// their own row), so whole tensors are split across cores by rows and stay byte-identical to llama-quantize.</summary>
public static class GgmlQuants
{
    /// <summary>Rows per parallel work item are chosen so each item covers at least this many weights.</summary>
    const int MinWeightsPerTask = 1 << 16;

    /// <summary>Quantizes <paramref name="source"/> (rows × <paramref name="columns"/>) into <paramref name="destination"/>.
    /// <paramref name="importance"/> is either empty (llama.cpp's reference quantizer) or one weight per column
    /// (llama.cpp's imatrix path; ignored by the float types and Q8_0, as in llama.cpp).</summary>
    public static void QuantizeRows(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination, int columns,
        ReadOnlySpan<float> importance = default)
    {
        int rows = CheckRows(type, source, destination, columns, importance, out int rowBytes);
        int rowsPerTask = Math.Max(1, MinWeightsPerTask / columns);
        int tasks = (rows + rowsPerTask - 1) / rowsPerTask;
        if (tasks <= 1)
        {
            QuantizeSerial(type, source, destination, columns, rowBytes, importance);
            return;
        }
        unsafe
        {
            fixed (float* src = source)
            fixed (byte* dst = destination)
            fixed (float* imp = importance)
            {
                nint s = (nint)src, d = (nint)dst, w = (nint)imp;
                int impLength = importance.Length;
                Parallel.For(0, tasks, t =>
                {
                    int r0 = t * rowsPerTask, n = Math.Min(rowsPerTask, rows - r0);
                    QuantizeSerial(type,
                        new ReadOnlySpan<float>((float*)s + (long)r0 * columns, n * columns),
                        new Span<byte>((byte*)d + (long)r0 * rowBytes, n * rowBytes),
                        columns, rowBytes, new ReadOnlySpan<float>((float*)w, impLength));
                });
            }
        }
    }

    /// <summary><see cref="QuantizeRows"/> on the calling thread, for callers that split the rows across cores themselves.</summary>
    public static void QuantizeRowsSerial(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination, int columns,
        ReadOnlySpan<float> importance = default)
    {
        CheckRows(type, source, destination, columns, importance, out int rowBytes);
        QuantizeSerial(type, source, destination, columns, rowBytes, importance);
    }

    /// <returns>the number of rows</returns>
    static int CheckRows(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination, int columns, ReadOnlySpan<float> importance,
        out int rowBytes)
    {
        if (!GgmlTypes.CanQuantize(type))
            throw new LlmqException($"Llmq cannot write ggml type {GgmlTypes.Name(type)}");
        if (columns <= 0 || source.Length % columns != 0)
            throw new ArgumentException($"{source.Length} values are not whole rows of {columns}");
        if (columns % GgmlTypes.BlockSize(type) != 0)
            throw new ArgumentException($"row length {columns} is not a multiple of the {GgmlTypes.Name(type)} block size");
        if (!importance.IsEmpty && importance.Length != columns)
            throw new ArgumentException($"importance has {importance.Length} weights for rows of {columns}");
        int rows = source.Length / columns;
        rowBytes = (int)GgmlTypes.RowSize(type, columns);
        if (destination.Length != (long)rows * rowBytes)
            throw new ArgumentException($"destination holds {destination.Length} bytes, {(long)rows * rowBytes} needed");
        return rows;
    }

    static void QuantizeSerial(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination, int columns, int rowBytes,
        ReadOnlySpan<float> importance)
    {
        int rows = source.Length / columns;
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                return;
            case GgmlType.F16:
                var half = MemoryMarshal.Cast<byte, Half>(destination);
                for (int i = 0; i < source.Length; i++) half[i] = (Half)source[i];
                return;
            case GgmlType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < source.Length; i++) bf[i] = ToBFloat16(source[i]);
                return;
            // several rows at once: their importance weighting needs each row's mean square
            case GgmlType.Q4_0: BlockQ4.QuantizeRowsQ4_0(source, destination, columns, importance); return;
            case GgmlType.Q4_1: BlockQ4.QuantizeRowsQ4_1(source, destination, columns, importance); return;
            case GgmlType.Q5_0: BlockQ5.QuantizeRowsQ5_0(source, destination, columns, importance); return;
            case GgmlType.Q5_1: BlockQ5.QuantizeRowsQ5_1(source, destination, columns, importance); return;
        }
        for (int r = 0; r < rows; r++)
        {
            var x = source.Slice(r * columns, columns);
            var y = destination.Slice(r * rowBytes, rowBytes);
            switch (type)
            {
                case GgmlType.Q8_0: BlockQ8_0.QuantizeRow(x, y); break;
                case GgmlType.Q2_K: BlockQ2K.QuantizeRow(x, y, importance); break;
                case GgmlType.Q3_K: BlockQ3K.QuantizeRow(x, y, importance); break;
                case GgmlType.Q4_K: BlockQ4K.QuantizeRowQ4K(x, y, importance); break;
                case GgmlType.Q5_K: BlockQ4K.QuantizeRowQ5K(x, y, importance); break;
                case GgmlType.Q6_K: BlockQ6K.QuantizeRow(x, y, importance); break;
                default: throw new LlmqException($"Llmq cannot write ggml type {GgmlTypes.Name(type)}");
            }
        }
    }

    /// <summary>Dequantizes whole rows of <paramref name="columns"/> values (serially: callers parallelize across tensors).</summary>
    public static void DequantizeRows(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination, int columns)
    {
        if (columns <= 0 || destination.Length % columns != 0)
            throw new ArgumentException($"{destination.Length} values are not whole rows of {columns}");
        int rows = destination.Length / columns;
        long rowBytes = GgmlTypes.RowSize(type, columns);
        if (source.Length != rows * rowBytes)
            throw new ArgumentException($"source holds {source.Length} bytes, {rows * rowBytes} expected");
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                return;
            case GgmlType.F64:
                var f64 = MemoryMarshal.Cast<byte, double>(source);
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)f64[i];
                return;
            case GgmlType.F16:
                var half = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)half[i];
                return;
            case GgmlType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < destination.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(bf[i] << 16);
                return;
        }
        // Whole rows are whole blocks, so the tensor dequantizes as one long row.
        switch (type)
        {
            case GgmlType.Q8_0: BlockQ8_0.DequantizeRow(source, destination); break;
            case GgmlType.Q4_0: BlockQ4.DequantizeRowQ4_0(source, destination); break;
            case GgmlType.Q4_1: BlockQ4.DequantizeRowQ4_1(source, destination); break;
            case GgmlType.Q5_0: BlockQ5.DequantizeRowQ5_0(source, destination); break;
            case GgmlType.Q5_1: BlockQ5.DequantizeRowQ5_1(source, destination); break;
            case GgmlType.Q2_K: BlockQ2K.DequantizeRow(source, destination); break;
            case GgmlType.Q3_K: BlockQ3K.DequantizeRow(source, destination); break;
            case GgmlType.Q4_K: BlockQ4K.DequantizeRowQ4K(source, destination); break;
            case GgmlType.Q5_K: BlockQ4K.DequantizeRowQ5K(source, destination); break;
            case GgmlType.Q6_K: BlockQ6K.DequantizeRow(source, destination); break;
            default: throw new LlmqException($"Llmq cannot dequantize ggml type {GgmlTypes.Name(type)}");
        }
    }

    /// <summary>ggml's fp32 → bf16: round to nearest even, NaN kept quiet.</summary>
    static ushort ToBFloat16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }
}
