using System.Numerics.Tensors;
using Llmq.Numerics;
using Llmq.Quantization;

namespace Llmq.Tests.Quantization;

/// <summary>The per-row fast paths of the observers, scale computation, quantizer and FP4 packing against their scalar
/// definitions, bit for bit, on awkward inputs: ±0, NaN, ±inf, subnormals, huge values, partial groups.</summary>
public class FastPathTests
{
    static readonly float[] Specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, -1e-40f, 3e38f, -3e38f, 1e-6f];

    static float[] Weights(int n, int seed, bool specials)
    {
        var rng = new Random(seed);
        var w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-3, 2)));
        if (specials)
            for (int i = 0; i < n; i += 97) w[i] = Specials[i / 97 % Specials.Length];
        Array.Fill(w, 0f, n / 2, Math.Min(64, n / 2));   // whole zero groups (zero scale → eps / 0.125)
        return w;
    }

    public static TheoryData<string, int, int, bool> Cases()
    {
        var data = new TheoryData<string, int, int, bool>();
        foreach (var preset in new[] { "W4A16", "W4A16_ASYM", "W8A16", "FP8_DYNAMIC", "NVFP4A16", "MXFP4" })
            foreach (var cols in new[] { 256, 384 })
                foreach (var specials in new[] { false, true })
                    data.Add(preset, 5, cols, specials);
        data.Add("NVFP4A16", 3, 200, false);   // 200 = 12 groups of 16 and a partial one of 8
        data.Add("W4A16", 70, 40, true);       // a partial group of 40 < 128 columns, many rows per task
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SlotMinMaxScalesAndCodesEqualTheScalarDefinitions(string preset, int rows, int cols, bool specials)
    {
        var args = SchemePresets.Get(preset).Weights!;
        var w = Weights(rows * cols, rows + cols, specials);
        foreach (var precision in new[] { ModelPrecision.BFloat16, ModelPrecision.Float32, ModelPrecision.Float16 })
        {
            var qp = new QParams(args, rows, cols) { GlobalScale = args.HasGlobalScale ? 2688f / 3.7f : null };
            var mins = new float[qp.SlotCount];
            var maxs = new float[qp.SlotCount];
            Observers.SlotMinMax(w, qp, mins, maxs);
            for (int s = 0; s < qp.SlotCount; s++)
            {
                int r = s / qp.ScaleCols, c0 = s % qp.ScaleCols * qp.ColsPerSlot;
                var seg = w.AsSpan(r * cols + c0, Math.Min(qp.ColsPerSlot, cols - c0));
                // The general path keeps a running min / max from ±∞ with < and >: a NaN never replaces them.
                float min = TensorPrimitives.Min(seg) is var m && float.IsNaN(m) ? float.PositiveInfinity : m;
                float max = TensorPrimitives.Max(seg) is var x && float.IsNaN(x) ? float.NegativeInfinity : x;
                Assert.Equal(BitConverter.SingleToInt32Bits(min), BitConverter.SingleToInt32Bits(mins[s]));
                Assert.Equal(BitConverter.SingleToInt32Bits(max), BitConverter.SingleToInt32Bits(maxs[s]));
            }

            qp.SetFromMinMax(mins, maxs, args, precision);
            for (int s = 0; s < qp.SlotCount; s++)
            {
                var (scale, zp) = QParams.ComputeSlot(mins[s], maxs[s], args, precision, qp.GlobalScale);
                Assert.Equal(BitConverter.SingleToInt32Bits(scale), BitConverter.SingleToInt32Bits(qp.Scale[s]));
                Assert.Equal(zp, qp.ZeroPointOf(s));
            }

            var codes = new byte[w.Length];
            FakeQuant.Quantize(w, qp, args, codes);
            for (int i = 0; i < w.Length; i++)
            {
                int slot = qp.Slot(i / cols, i % cols);
                Assert.Equal(FakeQuant.Reference.Code(w[i], qp.EffectiveScale(slot), qp.ZeroPointOf(slot), args), codes[i]);
            }
        }
    }

    [Fact]
    public void Fp4BulkRoundingEqualsScalarAtEveryThreshold()
    {
        float[] thresholds = [0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f, 6f];
        var src = new List<float>(Specials);
        foreach (var t in thresholds)
            foreach (var x in new[] { t, MathF.BitDecrement(t), MathF.BitIncrement(t) })
                src.AddRange([x, -x]);
        foreach (var divisor in new[] { 1f, 0.37f, 1e-30f })
        {
            var codes = new byte[src.Count];
            Float4E2M1.FromFloat32(src.ToArray(), divisor, codes);
            for (int i = 0; i < src.Count; i++) Assert.Equal(Float4E2M1.FromFloat(src[i] / divisor), codes[i]);
        }
    }

    [Fact]
    public void PackPairsEqualsScalarAtEveryLength()
    {
        var rng = new Random(5);
        for (int n = 0; n <= 200; n += 2)
        {
            var codes = new byte[n];
            rng.NextBytes(codes);   // high nibbles set too: only each code's low nibble may land in the output
            var packed = new byte[n / 2];
            Float4E2M1.PackPairs(codes, packed);
            for (int k = 0; k < n / 2; k++) Assert.Equal((byte)((codes[2 * k] & 0xF) | (codes[2 * k + 1] << 4)), packed[k]);
        }
    }
}
