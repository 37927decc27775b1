using Llmq.Numerics;

namespace Llmq.Tests.Numerics;

/// <summary>The bulk bf16 and f16 conversions equal their scalar references at every length 0–256 (every vector width and tail).</summary>
public class HalfWidthBulkTests
{
    public static TheoryData<string> Formats => ["bf16", "f16"];

    [Theory]
    [MemberData(nameof(Formats))]
    public void EveryLengthCoversVectorTails(string format)
    {
        bool bf16 = format == "bf16";
        var rng = new Random(7);
        for (int n = 0; n <= 256; n++)
        {
            var src = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() * 100 - 50).ToArray();
            var narrow = new ushort[n];
            var back = new float[n];
            if (bf16)
            {
                BFloat16.FromFloat32(src, narrow);
                BFloat16.ToFloat32(narrow, back);
            }
            else
            {
                Float16.FromFloat32(src, narrow);
                Float16.ToFloat32(narrow, back);
            }
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(bf16 ? BFloat16.FromFloat(src[i]) : Float16.FromFloat(src[i]), narrow[i]);
                Assert.Equal(bf16 ? BFloat16.ToFloat(narrow[i]) : Float16.ToFloat(narrow[i]), back[i]);
            }
        }
    }
}
