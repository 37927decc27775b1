using System.Buffers.Binary;

namespace Llmq.Formats.Gguf;

/// <summary>Q2_K: super-blocks of 256 weights in 16 sub-blocks of 16 (84 bytes, 2.625 bpw):
/// scales[16] (low nibble: 4-bit scale, high nibble: 4-bit min), qs[64] (2-bit levels, four per byte), f16 d, f16 dmin.
/// w = d·sc·q − dmin·m. Byte qs[32·k + l] holds levels l, l+32, l+64, l+96 of the k-th 128-weight half at bits 0,2,4,6.</summary>
internal static class BlockQ2K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 84;
    const int OffQs = 16, OffD = 80, OffDmin = 82;

    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[QK / 16];
        Span<float> scales = stackalloc float[QK / 16];
        Span<float> sw = stackalloc float[QK / 16];
        Span<byte> Ls = stackalloc byte[QK / 16];
        Span<byte> Lm = stackalloc byte[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            if (importance.IsEmpty)
                QuantizeBlockRef(xb, yb, L, Laux, weights, mins, scales);
            else
                QuantizeBlockWeighted(xb, yb, importance.Slice(i * QK, QK), L, Laux, weights, mins, scales, sw, Ls, Lm);
            for (int j = 0; j < QK; j += 128)
                for (int l = 0; l < 32; ++l)
                    yb[OffQs + j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }

    static void QuantizeBlockRef(ReadOnlySpan<float> x, Span<byte> y, Span<byte> L, Span<byte> Laux, Span<float> weights,
        Span<float> mins, Span<float> scales)
    {
        const float q4scale = 15f;
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < QK / 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weights[l] = MathF.Abs(x[16 * j + l]);
            scales[j] = QuantMath.MakeQkx2Quants(16, 3, x.Slice(16 * j, 16), weights, L.Slice(16 * j, 16), out mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        if (maxScale > 0)
        {
            float iscale = q4scale / maxScale;
            for (int j = 0; j < QK / 16; ++j) y[j] = (byte)QuantMath.NearestInt(iscale * scales[j]);
            BinaryPrimitives.WriteUInt16LittleEndian(y[OffD..], QuantMath.ToHalf(maxScale / q4scale));
        }
        else
        {
            y[..16].Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(y[OffD..], QuantMath.ToHalf(0f));
        }
        if (maxMin > 0)
        {
            float iscale = q4scale / maxMin;
            for (int j = 0; j < QK / 16; ++j) y[j] |= (byte)(QuantMath.NearestInt(iscale * mins[j]) << 4);
            BinaryPrimitives.WriteUInt16LittleEndian(y[OffDmin..], QuantMath.ToHalf(maxMin / q4scale));
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(y[OffDmin..], QuantMath.ToHalf(0f));
        }
        Requantize(x, y, L);
    }

    static void QuantizeBlockWeighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> qwBlock, Span<byte> L, Span<byte> Laux,
        Span<float> weight, Span<float> mins, Span<float> scales, Span<float> sw, Span<byte> Ls, Span<byte> Lm)
    {
        sw.Clear();
        float sumx2 = 0;
        for (int j = 0; j < QK; ++j) sumx2 += x[j] * x[j];
        float sigma2 = sumx2 / QK;
        for (int j = 0; j < QK / 16; ++j)
        {
            var qw = qwBlock.Slice(16 * j, 16);
            for (int l = 0; l < 16; ++l) weight[l] = qw[l] * MathF.Sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < QK / 16; ++l) sw[j] += weight[l];
            scales[j] = QuantMath.MakeQkx3Quants(16, 3, x.Slice(16 * j, 16), weight, L.Slice(16 * j, 16), out mins[j], Laux, -0.9f, 0.05f, 36, false);
        }
        float dm = QuantMath.MakeQpQuants(QK / 16, 15, scales, Ls, sw);
        float mm = QuantMath.MakeQpQuants(QK / 16, 15, mins, Lm, sw);
        BinaryPrimitives.WriteUInt16LittleEndian(y[OffD..], QuantMath.ToHalf(dm));
        BinaryPrimitives.WriteUInt16LittleEndian(y[OffDmin..], QuantMath.ToHalf(mm));
        for (int j = 0; j < QK / 16; ++j) y[j] = (byte)(Ls[j] | (Lm[j] << 4));
        Requantize(x, y, L);
    }

    /// <summary>Recomputes the levels from the stored (f16-rounded) scales; sub-blocks whose scale is 0 keep theirs.</summary>
    static void Requantize(ReadOnlySpan<float> x, ReadOnlySpan<byte> y, Span<byte> L)
    {
        float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(y[OffD..]));
        float mAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(y[OffDmin..]));
        for (int j = 0; j < QK / 16; ++j)
        {
            float d = dAll * (y[j] & 0xF);
            if (d == 0) continue;
            float dm = mAll * (y[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
            {
                int l = QuantMath.NearestInt((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (byte)Math.Clamp(l, 0, 3);
            }
        }
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var xb = x.Slice(i * QK, QK);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            float min = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffDmin..]));
            int o = 0, isc = 0;
            for (int n = 0; n < QK; n += 128)
            {
                var q = yb.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        byte sc = yb[isc++];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; ++l)
                            xb[o++] = dl * ((q[16 * half + l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}
