using System.Buffers.Binary;

namespace Llmq.Formats.Gguf;

/// <summary>Q3_K: super-blocks of 256 weights in 16 sub-blocks of 16 (110 bytes, 3.4375 bpw):
/// hmask[32] (bit 2 of each level: weight j's at byte j%32, bit j/32), qs[64] (low 2 bits, laid out as Q2_K),
/// scales[12] (sixteen 6-bit signed scales, biased by 32: low nibbles in bytes 0–7, high 2 bits in bytes 8–11), f16 d.
/// w = d·(sc − 32)·(q − 4).</summary>
internal static class BlockQ3K
{
    public const int QK = GgmlTypes.QK_K;
    public const int BlockBytes = 110;
    const int OffQs = 32, OffScales = 96, OffD = 108;

    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<float> scales = stackalloc float[QK / 16];
        Span<float> weight = stackalloc float[16];
        Span<float> sw = stackalloc float[QK / 16];
        Span<sbyte> Ls = stackalloc sbyte[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var sc = yb.Slice(OffScales, 12);
            sc.Clear();
            if (importance.IsEmpty)
            {
                float maxScale = 0, amax = 0;
                for (int j = 0; j < QK / 16; ++j)
                {
                    scales[j] = QuantMath.MakeQ3Quants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16), true);
                    float scale = MathF.Abs(scales[j]);
                    if (scale > amax) { amax = scale; maxScale = scales[j]; }
                }
                if (maxScale != 0)
                {
                    float iscale = -32f / maxScale;
                    for (int j = 0; j < QK / 16; ++j)
                    {
                        sbyte l = (sbyte)QuantMath.NearestInt(iscale * scales[j]);
                        PackScale(sc, j, Math.Clamp((int)l, -32, 31) + 32);
                    }
                    BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(1 / iscale));
                }
                else
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(0f));
                }
            }
            else
            {
                var qwBlock = importance.Slice(i * QK, QK);
                float sumx2 = 0;
                for (int j = 0; j < QK; ++j) sumx2 += xb[j] * xb[j];
                float sigma2 = 2 * sumx2 / QK;
                for (int j = 0; j < QK / 16; ++j)
                {
                    var qw = qwBlock.Slice(16 * j, 16);
                    for (int l = 0; l < 16; ++l) weight[l] = qw[l] * MathF.Sqrt(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                    float sumw = 0;
                    for (int l = 0; l < 16; ++l) sumw += weight[l];
                    sw[j] = sumw;
                    scales[j] = QuantMath.MakeQxQuants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16), 1, weight);
                }
                float dBlock = QuantMath.MakeQxQuants(QK / 16, 32, scales, Ls, 1, sw);
                for (int j = 0; j < QK / 16; ++j) PackScale(sc, j, Ls[j]);
                BinaryPrimitives.WriteUInt16LittleEndian(yb[OffD..], QuantMath.ToHalf(dBlock));
            }

            float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            for (int j = 0; j < QK / 16; ++j)
            {
                float d = dAll * UnpackScale(sc, j);
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ++ii)
                {
                    int l = QuantMath.NearestInt(xb[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Clamp(l, -4, 3) + 4);
                }
            }

            var hmask = yb[..32];
            hmask.Clear();
            int m = 0;
            byte hm = 1;
            for (int j = 0; j < QK; ++j)
            {
                if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }
                if (++m == QK / 8) { m = 0; hm <<= 1; }
            }
            for (int j = 0; j < QK; j += 128)
                for (int l = 0; l < 32; ++l)
                    yb[OffQs + j / 4 + l] = (byte)((byte)L[j + l] | ((byte)L[j + l + 32] << 2) | ((byte)L[j + l + 64] << 4) | ((byte)L[j + l + 96] << 6));
        }
    }

    /// <summary>Stores the biased 6-bit scale l (0..63) of sub-block j.</summary>
    static void PackScale(Span<byte> sc, int j, int l)
    {
        if (j < 8) sc[j] = (byte)(l & 0xF);
        else sc[j - 8] |= (byte)((l & 0xF) << 4);
        l >>= 4;
        sc[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
    }

    /// <summary>Sub-block j's signed scale (the stored 6-bit value minus 32).</summary>
    static int UnpackScale(ReadOnlySpan<byte> sc, int j)
    {
        int low = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        return (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            var xb = x.Slice(i * QK, QK);
            float dAll = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb[OffD..]));
            var sc = yb.Slice(OffScales, 12);
            var hm = yb[..32];
            int o = 0, isc = 0;
            byte m = 1;
            for (int n = 0; n < QK; n += 128)
            {
                var q = yb.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        float dl = dAll * UnpackScale(sc, isc++);
                        for (int l = 0; l < 16; ++l)
                        {
                            int k = 16 * half + l;
                            xb[o++] = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) != 0 ? 0 : 4));
                        }
                    }
                    m <<= 1;
                }
            }
        }
    }
}
