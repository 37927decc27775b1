using System.Buffers.Binary;

namespace Llmq.Formats.Gguf;

/// <summary>Q6_K: super-blocks of 256 weights in 16 sub-blocks of 16 (210 bytes, 6.5625 bpw): ql[128] (low 4 bits),
/// qh[64] (high 2 bits), int8 scales[16], f16 d. w = d·sc·(q − 32). Per 128-weight half k: ql[64k + l] holds weights
/// l (low nibble) and l+64 (high), ql[64k + 32 + l] weights l+32 and l+96; qh[32k + l] holds the high bits of l, l+32,
/// l+64, l+96 at bits 0, 2, 4, 6. Sub-block scales come from make_qx_quants (weights x², or the importance weights).</summary>
internal static class BlockQ6K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 210;
    const int OffQh = 128, OffScales = 192, OffD = 208;

    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<float> scales = stackalloc float[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < QK / 16; ++ib)
            {
                var qw = importance.IsEmpty ? default : importance.Slice(i * QK + 16 * ib, 16);
                float scale = QuantMath.MakeQxQuants(16, 32, xb.Slice(16 * ib, 16), L.Slice(16 * ib, 16), 1, qw);
                scales[ib] = scale;
                float absScale = MathF.Abs(scale);
                if (absScale > maxAbsScale) { maxAbsScale = absScale; maxScale = scale; }
            }
            if (maxAbsScale < QuantMath.GroupMaxEps)
            {
                yb.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(1 / iscale));
            for (int ib = 0; ib < QK / 16; ++ib)
                yb[OffScales + ib] = (byte)(sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[ib]));

            float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            for (int j = 0; j < QK / 16; ++j)
            {
                float d = dAll * (sbyte)yb[OffScales + j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ++ii)
                {
                    int l = QuantMath.NearestInt(xb[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Clamp(l, -32, 31) + 32);
                }
            }

            for (int j = 0; j < QK; j += 128)
            {
                var ql = yb.Slice(j / 2, 64);
                var qh = yb.Slice(OffQh + j / 4, 32);
                for (int l = 0; l < 32; ++l)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[l] = (byte)(q1 | (q3 << 4));
                    ql[l + 32] = (byte)(q2 | (q4 << 4));
                    qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
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
            for (int n = 0; n < QK; n += 128)
            {
                var ql = yb.Slice(n / 2, 64);
                var qh = yb.Slice(OffQh + n / 4, 32);
                var sc = yb.Slice(OffScales + n / 16, 8);
                for (int l = 0; l < 32; ++l)
                {
                    int isc = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    xb[n + l] = d * (sbyte)sc[isc] * q1;
                    xb[n + l + 32] = d * (sbyte)sc[isc + 2] * q2;
                    xb[n + l + 64] = d * (sbyte)sc[isc + 4] * q3;
                    xb[n + l + 96] = d * (sbyte)sc[isc + 6] * q4;
                }
            }
        }
    }
}
