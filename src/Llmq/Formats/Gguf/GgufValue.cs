namespace Llmq.Formats.Gguf;

/// <summary>GGUF metadata value types, numbered as the file stores them.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>One GGUF metadata value. Scalars are boxed primitives; strings are <see cref="string"/>; arrays hold a typed
/// .NET array (<c>uint[]</c>, <c>float[]</c>, <c>string[]</c>, <c>bool[]</c>…) or, for arrays of arrays, <c>GgufValue[]</c>.</summary>
public sealed class GgufValue
{
    public GgufValueType Type { get; }
    /// <summary>Element type when <see cref="Type"/> is Array.</summary>
    public GgufValueType ElementType { get; }
    public object Value { get; }

    GgufValue(GgufValueType type, object value, GgufValueType elementType = default)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    public static GgufValue U8(byte v) => new(GgufValueType.UInt8, v);
    public static GgufValue I8(sbyte v) => new(GgufValueType.Int8, v);
    public static GgufValue U16(ushort v) => new(GgufValueType.UInt16, v);
    public static GgufValue I16(short v) => new(GgufValueType.Int16, v);
    public static GgufValue U32(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue I32(int v) => new(GgufValueType.Int32, v);
    public static GgufValue F32(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Str(string v) => new(GgufValueType.String, v);
    public static GgufValue U64(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue I64(long v) => new(GgufValueType.Int64, v);
    public static GgufValue F64(double v) => new(GgufValueType.Float64, v);

    /// <summary>An array of scalars or strings; the element type follows from T.</summary>
    public static GgufValue Array<T>(T[] items) => new(GgufValueType.Array, items, ElementTypeOf(typeof(T)));

    /// <summary>An array whose elements are themselves arrays (allowed by the format, rare in practice).</summary>
    public static GgufValue ArrayOfArrays(GgufValue[] items)
    {
        foreach (var item in items)
            if (item.Type != GgufValueType.Array)
                throw new ArgumentException("every element of an array of arrays must be an array", nameof(items));
        return new(GgufValueType.Array, items, GgufValueType.Array);
    }

    internal static GgufValue Scalar(GgufValueType type, object value) => new(type, value);
    internal static GgufValue RawArray(GgufValueType elementType, object items) => new(GgufValueType.Array, items, elementType);

    internal static GgufValueType ElementTypeOf(Type t) =>
        t == typeof(byte) ? GgufValueType.UInt8 : t == typeof(sbyte) ? GgufValueType.Int8 :
        t == typeof(ushort) ? GgufValueType.UInt16 : t == typeof(short) ? GgufValueType.Int16 :
        t == typeof(uint) ? GgufValueType.UInt32 : t == typeof(int) ? GgufValueType.Int32 :
        t == typeof(float) ? GgufValueType.Float32 : t == typeof(bool) ? GgufValueType.Bool :
        t == typeof(string) ? GgufValueType.String : t == typeof(ulong) ? GgufValueType.UInt64 :
        t == typeof(long) ? GgufValueType.Int64 : t == typeof(double) ? GgufValueType.Float64 :
        t == typeof(GgufValue) ? GgufValueType.Array :
        throw new ArgumentException($"{t} is not a GGUF value type");

    /// <summary>Number of elements when this is an array.</summary>
    public int Count => Value is System.Array a ? a.Length : throw new InvalidOperationException("not an array");

    public string AsString() => Value as string ?? throw new InvalidOperationException($"GGUF value is {Type}, not String");
    public bool AsBool() => Value is bool b ? b : throw new InvalidOperationException($"GGUF value is {Type}, not Bool");
    public T[] AsArray<T>() => Value as T[] ?? throw new InvalidOperationException($"GGUF value is not an array of {typeof(T).Name}");

    /// <summary>Any integer-typed scalar as a long (u64 above long.MaxValue throws).</summary>
    public long AsInt64() => Value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => checked((long)v),
        _ => throw new InvalidOperationException($"GGUF value is {Type}, not an integer"),
    };

    /// <summary>Any numeric scalar as a double.</summary>
    public double AsDouble() => Value switch
    {
        float v => v, double v => v,
        _ => AsInt64(),
    };

    public override string ToString() => Value switch
    {
        string s => s,
        GgufValue[] nested => $"[{nested.Length} arrays]",
        System.Array a => $"[{a.Length} × {ElementType}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
