namespace Llmq.Quantization;

/// <summary>
/// The dtype of the original weights ("model dtype"). compressed-tensors computes scales in it (a bf16 model gets
/// <c>scale = bf16(amax / 7.5)</c>) and stores them in it, so bit-exact scales need to know it.
/// </summary>
public enum ModelPrecision { Float32, BFloat16, Float16 }

public static class ModelPrecisionExtensions
{
    /// <summary>Rounds a float32 to the nearest value of the precision (ties to even), returned as float32.</summary>
    public static float Round(this ModelPrecision precision, float x)
    {
        switch (precision)
        {
            case ModelPrecision.BFloat16:
                uint bits = BitConverter.SingleToUInt32Bits(x);
                if (float.IsNaN(x)) return x;
                bits += 0x7FFF + ((bits >> 16) & 1);
                return BitConverter.UInt32BitsToSingle(bits & 0xFFFF_0000);
            case ModelPrecision.Float16:
                return (float)(Half)x;
            default:
                return x;
        }
    }

    /// <summary><c>torch.finfo(dtype).eps</c> — what a zero scale is replaced with.</summary>
    public static float Eps(this ModelPrecision precision) => precision switch
    {
        ModelPrecision.BFloat16 => 0.0078125f,
        ModelPrecision.Float16 => 0.0009765625f,
        _ => 1.1920929e-07f,
    };
}
