using System.Buffers.Binary;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>The 5-bit legacy blocks of 32 weights: the low nibbles as in Q4 plus a 32-bit word qh holding bit 4 of
/// weight j at bit j.
/// <list type="bullet">
/// <item>Q5_0 = f16 d + u32 qh + 16 bytes (22 bytes, 5.5 bpw): w = (q − 16)·d, d = max/−16; q = min(31, trunc(x/d + 16.5)).</item>
/// <item>Q5_1 = f16 d + f16 m + u32 qh + 16 bytes (24 bytes, 6 bpw): w = q·d + m, d = (max − min)/31; q = trunc((x − m)/d + 0.5).</item>
/// </list>
/// Importance weights switch to make_qx_quants (Q5_0) / make_qkx3_quants (Q5_1) as for Q4.</summary>
internal static class BlockQ5
{
    public const int QK = 32;
    public const int Q5_0Bytes = 22;
    public const int Q5_1Bytes = 24;

    /// <summary>Quantizes whole rows of <paramref name="columns"/> weights.</summary>
    public static void QuantizeRowsQ5_0(ReadOnlySpan<float> x, Span<byte> y, int columns, ReadOnlySpan<float> importance)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            LegacyBlockLanes.QuantizeRows(x, y, columns, importance, bits: 5, withMin: false);
            return;
        }
        int rowBytes = columns / QK * Q5_0Bytes;
        for (int r = 0; r < x.Length / columns; r++)
            QuantizeRowQ5_0Reference(x.Slice(r * columns, columns), y.Slice(r * rowBytes, rowBytes), importance);
    }

    /// <summary>The scalar form, block after block: the reference <see cref="LegacyBlockLanes"/> is tested against, and the
    /// path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowQ5_0Reference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty)
        {
            QuantizeRowQ5_0Weighted(x, y, importance);
            return;
        }
        Span<byte> q = stackalloc byte[QK];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            float amax = 0f, max = 0f;
            for (int j = 0; j < QK; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            for (int j = 0; j < QK; j++)
                q[j] = (byte)Math.Min(31, (int)(xb[j] * id + 16.5f));
            Pack(y.Slice(i * Q5_0Bytes, Q5_0Bytes), QuantMath.ToHalf(d), null, q);
        }
    }

    static void QuantizeRowQ5_0Weighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<float> weight = stackalloc float[QK];
        Span<sbyte> L = stackalloc sbyte[QK];
        float sigma2 = BlockQ4.MeanSquare(x);
        int nb = x.Length / QK;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(QK * ib, QK);
            var qw = importance.Slice(QK * ib, QK);
            for (int j = 0; j < QK; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            float d = QuantMath.MakeQxQuants(QK, 16, xb, L, 1, weight);
            Pack(y.Slice(ib * Q5_0Bytes, Q5_0Bytes), QuantMath.ToHalf(d), null, System.Runtime.InteropServices.MemoryMarshal.AsBytes(L));
        }
    }

    /// <summary>Quantizes whole rows of <paramref name="columns"/> weights.</summary>
    public static void QuantizeRowsQ5_1(ReadOnlySpan<float> x, Span<byte> y, int columns, ReadOnlySpan<float> importance)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            LegacyBlockLanes.QuantizeRows(x, y, columns, importance, bits: 5, withMin: true);
            return;
        }
        int rowBytes = columns / QK * Q5_1Bytes;
        for (int r = 0; r < x.Length / columns; r++)
            QuantizeRowQ5_1Reference(x.Slice(r * columns, columns), y.Slice(r * rowBytes, rowBytes), importance);
    }

    /// <summary>The scalar form, block after block: the reference <see cref="LegacyBlockLanes"/> is tested against, and the
    /// path on hardware without 512-bit vectors.</summary>
    internal static void QuantizeRowQ5_1Reference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty)
        {
            QuantizeRowQ5_1Weighted(x, y, importance);
            return;
        }
        Span<byte> q = stackalloc byte[QK];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < QK; j++)
            {
                float v = xb[j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / ((1 << 5) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            for (int j = 0; j < QK; j++)
                q[j] = (byte)(int)((xb[j] - min) * id + 0.5f);
            Pack(y.Slice(i * Q5_1Bytes, Q5_1Bytes), QuantMath.ToHalf(d), QuantMath.ToHalf(min), q);
        }
    }

    static void QuantizeRowQ5_1Weighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<float> weight = stackalloc float[QK];
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[QK];
        float sigma2 = BlockQ4.MeanSquare(x);
        int nb = x.Length / QK;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(QK * ib, QK);
            var qw = importance.Slice(QK * ib, QK);
            for (int j = 0; j < QK; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            float d = QuantMath.MakeQkx3Quants(QK, 31, xb, weight, L, out float min, Laux, -0.9f, 0.05f, 36, false);
            Pack(y.Slice(ib * Q5_1Bytes, Q5_1Bytes), QuantMath.ToHalf(d), QuantMath.ToHalf(-min), L);
        }
    }

    /// <summary>Writes d (and m for Q5_1), qh and the nibbles of 32 five-bit levels q.</summary>
    static void Pack(Span<byte> yb, ushort d, ushort? m, ReadOnlySpan<byte> q)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(yb, d);
        int o = 2;
        if (m is ushort mv) { BinaryPrimitives.WriteUInt16LittleEndian(yb[2..], mv); o = 4; }
        uint qh = 0;
        for (int j = 0; j < QK / 2; j++)
        {
            byte q0 = q[j], q1 = q[j + QK / 2];
            yb[o + 4 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK / 2);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(yb[o..], qh);
    }

    public static void DequantizeRowQ5_0(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q5_0Bytes, Q5_0Bytes);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(yb[2..]);
            var xb = x.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10;
                int h1 = (int)(qh >> (j + 12)) & 0x10;
                xb[j] = (((yb[6 + j] & 0x0F) | h0) - 16) * d;
                xb[j + QK / 2] = (((yb[6 + j] >> 4) | h1) - 16) * d;
            }
        }
    }

    public static void DequantizeRowQ5_1(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * Q5_1Bytes, Q5_1Bytes);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            float m = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[2..]));
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(yb[4..]);
            var xb = x.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10;
                int h1 = (int)(qh >> (j + 12)) & 0x10;
                xb[j] = ((yb[8 + j] & 0x0F) | h0) * d + m;
                xb[j + QK / 2] = ((yb[8 + j] >> 4) | h1) * d + m;
            }
        }
    }
}
