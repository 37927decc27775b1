using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llmq.Formats.Gguf;

/// <summary>Q8_0: blocks of 32 weights = f16 scale d + 32 × int8; w = q·d (34 bytes, 8.5 bits per weight).
/// d = max|x| / 127 and q = roundf(x / d), rounding ties away from zero as C's roundf does. llama.cpp ignores
/// importance weights for this type.</summary>
internal static class BlockQ8_0
{
    public const int QK = 32;
    public const int BlockBytes = 34;

    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float amax = 0f;
            for (int j = 0; j < QK; j++)
            {
                float a = MathF.Abs(xb[j]);
                amax = amax > a ? amax : a;
            }
            float d = amax / ((1 << 7) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteUInt16LittleEndian(yb, QuantMath.ToHalf(d));
            for (int j = 0; j < QK; j++)
                yb[2 + j] = (byte)(sbyte)MathF.Round(xb[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    public static void DequantizeRow(ReadOnlySpan<byte> y, Span<float> x)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float d = QuantMath.FromHalf(BinaryPrimitives.ReadUInt16LittleEndian(yb));
            var xb = x.Slice(i * QK, QK);
            if (Vector256.IsHardwareAccelerated)
            {
                // 32 int8 → 4 × 8 int32 → float, times d: the same single rounding as the scalar q·d.
                var dv = Vector256.Create(d);
                var q = Vector256.Create(MemoryMarshal.Cast<byte, sbyte>(yb.Slice(2, QK)));
                var (q0, q1) = Vector256.Widen(q);
                var (a, b) = Vector256.Widen(q0);
                var (c, e) = Vector256.Widen(q1);
                (Vector256.ConvertToSingle(a) * dv).CopyTo(xb);
                (Vector256.ConvertToSingle(b) * dv).CopyTo(xb[8..]);
                (Vector256.ConvertToSingle(c) * dv).CopyTo(xb[16..]);
                (Vector256.ConvertToSingle(e) * dv).CopyTo(xb[24..]);
            }
            else
            {
                for (int j = 0; j < QK; j++)
                    xb[j] = (sbyte)yb[2 + j] * d;
            }
        }
    }
}
