using System.Buffers.Binary;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>The 4-bit legacy blocks of 32 weights; nibble j holds weight j (low) and weight j+16 (high).
/// <list type="bullet">
/// <item>Q4_0 = f16 d + 16 bytes (18 bytes, 4.5 bpw): w = (q − 8)·d, d = max/−8 where max is the signed value of largest
/// magnitude; q = min(15, trunc(x/d + 8.5)).</item>
/// <item>Q4_1 = f16 d + f16 m + 16 bytes (20 bytes, 5 bpw): w = q·d + m, d = (max − min)/15, m = min; q = min(15, trunc((x − m)/d + 0.5)).</item>
/// </list>
/// With importance weights llama.cpp switches to searched scales: Q4_0 uses make_qx_quants, Q4_1 make_qkx3_quants,
/// both weighting each weight by imatrix·sqrt(σ² + x²) with σ² the row's mean square.</summary>
internal static class BlockQ4
{
    public const int QK = 32;
    public const int Q4_0Bytes = 18;
    public const int Q4_1Bytes = 20;

    /// <summary>Quantizes whole rows of <paramref name="columns"/> weights.</summary>
    public static void QuantizeRowsQ4_0(ReadOnlySpan<float> x, Span<byte> y, int columns, ReadOnlySpan<float> importance)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            LegacyBlockLanes.QuantizeRows(x, y, columns, importance, bits: 4, withMin: false);
            return;
        }
        int rowBytes = columns / QK * Q4_0Bytes;
        for (int r = 0; r < x.Length / columns; r++)
            QuantizeRowQ4_0Reference(x.Slice(r * columns, columns), y.Slice(r * rowBytes, rowBytes), importance);
    }

    /// <summary>The scalar form, block after block: the reference <see cref="LegacyBlockLanes"/> is tested against, and the
    /// path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowQ4_0Reference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty)
        {
            QuantizeRowQ4_0Weighted(x, y, importance);
            return;
        }
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Q4_0Bytes, Q4_0Bytes);
            float amax = 0f, max = 0f;
            for (int j = 0; j < QK; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(d));
            for (int j = 0; j < QK / 2; j++)
            {
                int q0 = Math.Min(15, (int)(xb[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(xb[QK / 2 + j] * id + 8.5f));
                yb[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    static void QuantizeRowQ4_0Weighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<float> weight = stackalloc float[QK];
        Span<sbyte> L = stackalloc sbyte[QK];
        float sigma2 = MeanSquare(x);
        int nb = x.Length / QK;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(QK * ib, QK);
            var qw = importance.Slice(QK * ib, QK);
            var yb = y.Slice(ib * Q4_0Bytes, Q4_0Bytes);
            for (int j = 0; j < QK; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            float d = QuantMath.MakeQxQuants(QK, 8, xb, L, 1, weight);
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(d));
            for (int j = 0; j < 16; j++)
                yb[2 + j] = (byte)((byte)L[j] | ((byte)L[j + 16] << 4));
        }
    }

    /// <summary>Quantizes whole rows of <paramref name="columns"/> weights.</summary>
    public static void QuantizeRowsQ4_1(ReadOnlySpan<float> x, Span<byte> y, int columns, ReadOnlySpan<float> importance)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            LegacyBlockLanes.QuantizeRows(x, y, columns, importance, bits: 4, withMin: true);
            return;
        }
        int rowBytes = columns / QK * Q4_1Bytes;
        for (int r = 0; r < x.Length / columns; r++)
            QuantizeRowQ4_1Reference(x.Slice(r * columns, columns), y.Slice(r * rowBytes, rowBytes), importance);
    }

    /// <summary>The scalar form, block after block: the reference <see cref="LegacyBlockLanes"/> is tested against, and the
    /// path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowQ4_1Reference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty)
        {
            QuantizeRowQ4_1Weighted(x, y, importance);
            return;
        }
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Q4_1Bytes, Q4_1Bytes);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < QK; j++)
            {
                float v = xb[j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / ((1 << 4) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(d));
            BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], QuantMath.ToHalf(min));
            for (int j = 0; j < QK / 2; j++)
            {
                int q0 = Math.Min(15, (int)((xb[j] - min) * id + 0.5f));
                int q1 = Math.Min(15, (int)((xb[QK / 2 + j] - min) * id + 0.5f));
                yb[4 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    static void QuantizeRowQ4_1Weighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<float> weight = stackalloc float[QK];
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[QK];
        float sigma2 = MeanSquare(x);
        int nb = x.Length / QK;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(QK * ib, QK);
            var qw = importance.Slice(QK * ib, QK);
            var yb = y.Slice(ib * Q4_1Bytes, Q4_1Bytes);
            for (int j = 0; j < QK; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            float d = QuantMath.MakeQkx3Quants(QK, 15, xb, weight, L, out float min, Laux, -0.9f, 0.05f, 36, false);
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(d));
            BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], QuantMath.ToHalf(-min));
            for (int j = 0; j < 16; j++)
                yb[4 + j] = (byte)(L[j] | (L[j + 16] << 4));
        }
    }

    /// <summary>σ² of the weighted legacy quantizers: the whole row's sum of squares over its length.</summary>
    internal static float MeanSquare(ReadOnlySpan<float> x)
    {
        float sum = 0;
        for (int j = 0; j < x.Length; j++) sum += x[j] * x[j];
        return sum / x.Length;
    }

    public static void DequantizeRowQ4_0(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q4_0Bytes, Q4_0Bytes);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            var xb = x.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                xb[j] = ((yb[2 + j] & 0x0F) - 8) * d;
                xb[j + QK / 2] = ((yb[2 + j] >> 4) - 8) * d;
            }
        }
    }

    public static void DequantizeRowQ4_1(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q4_1Bytes, Q4_1Bytes);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            float m = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
            var xb = x.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                xb[j] = (yb[4 + j] & 0x0F) * d + m;
                xb[j + QK / 2] = (yb[4 + j] >> 4) * d + m;
            }
        }
    }
}
