namespace Llmq.Checkpoints;

/// <summary>Element types of safetensors tensors, named as in the safetensors header.</summary>
public enum DType
{
    F64, F32, F16, BF16, F8_E4M3, F8_E5M2, F8_E8M0,
    I64, I32, I16, I8, U64, U32, U16, U8, BOOL,
}

/// <summary>Safetensors names and item sizes of <see cref="DType"/>.</summary>
public static class DTypes
{
    /// <summary>The dtype for a safetensors header name ("BF16", "F8_E4M3", ...), or null when unknown.</summary>
    public static DType? TryParse(string name) => name switch
    {
        "F64" => DType.F64, "F32" => DType.F32, "F16" => DType.F16, "BF16" => DType.BF16,
        "F8_E4M3" => DType.F8_E4M3, "F8_E5M2" => DType.F8_E5M2, "F8_E8M0" => DType.F8_E8M0,
        "I64" => DType.I64, "I32" => DType.I32, "I16" => DType.I16, "I8" => DType.I8,
        "U64" => DType.U64, "U32" => DType.U32, "U16" => DType.U16, "U8" => DType.U8, "BOOL" => DType.BOOL,
        _ => null,
    };

    public static DType Parse(string name) =>
        TryParse(name) ?? throw new LlmqException($"unknown safetensors dtype '{name}'");

    public static string Name(DType dtype) => dtype.ToString();

    /// <summary>Bytes per element.</summary>
    public static int Size(DType dtype) => dtype switch
    {
        DType.F64 or DType.I64 or DType.U64 => 8,
        DType.F32 or DType.I32 or DType.U32 => 4,
        DType.F16 or DType.BF16 or DType.I16 or DType.U16 => 2,
        DType.F8_E4M3 or DType.F8_E5M2 or DType.F8_E8M0 or DType.I8 or DType.U8 or DType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The name torch uses in config.json's torch_dtype for a float dtype ("bfloat16", ...).</summary>
    public static string TorchName(DType dtype) => dtype switch
    {
        DType.F64 => "float64", DType.F32 => "float32", DType.F16 => "float16", DType.BF16 => "bfloat16",
        DType.F8_E4M3 => "float8_e4m3fn", DType.F8_E5M2 => "float8_e5m2",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
