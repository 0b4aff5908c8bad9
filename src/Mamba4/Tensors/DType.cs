namespace Mamba4.Tensors;

/// <summary>Element types a tensor can hold. F32 is the CPU compute type; the others are storage types.</summary>
public enum DType
{
    F32,
    F64,
    BF16,
    F16,
    I32,
    I64,
    U8,
    /// <summary>Signed 8-bit: weight-only int8 weights, each row with an F32 scale (<see cref="Tensor.RowScale"/>).</summary>
    I8,
}

public static class DTypeExtensions
{
    public static int ElementSize(this DType dtype) => dtype switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.U8 or DType.I8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public static bool IsFloatingPoint(this DType dtype) =>
        dtype is DType.F32 or DType.F64 or DType.BF16 or DType.F16;

    /// <summary>A storage type of weights that stay narrow in memory (BF16, F16, I8 with row scales), read by the narrow GEMM.</summary>
    public static bool IsNarrowWeight(this DType dtype) => dtype is DType.BF16 or DType.F16 or DType.I8;

    /// <summary>The safetensors / PyTorch spelling ("F32", "BF16", "I64", ...).</summary>
    public static string SafetensorsName(this DType dtype) => dtype.ToString();

    /// <summary>The CLR type that holds one element of <paramref name="dtype"/>.</summary>
    public static Type ClrType(this DType dtype) => dtype switch
    {
        DType.F32 => typeof(float),
        DType.F64 => typeof(double),
        DType.BF16 => typeof(BFloat16),
        DType.F16 => typeof(Half),
        DType.I32 => typeof(int),
        DType.I64 => typeof(long),
        DType.U8 => typeof(byte),
        DType.I8 => typeof(sbyte),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
