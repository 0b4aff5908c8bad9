using System.Numerics.Tensors;

namespace Mamba4.Tensors;

/// <summary>Element-wise dtype conversion between host buffers. Floats round to nearest even;
/// integer targets truncate toward zero as PyTorch's <c>.to(torch.int64)</c> does.</summary>
internal static unsafe class DTypeConvert
{
    public static void Convert(void* src, DType srcType, void* dst, DType dstType, long count)
    {
        if (srcType == dstType)
        {
            Buffer.MemoryCopy(src, dst, count * dstType.ElementSize(), count * srcType.ElementSize());
            return;
        }
        // Chunked through float32 or float64 so every pair has one path and int64 stays exact.
        const int chunk = 1024;
        bool viaDouble = srcType is DType.F64 or DType.I64 or DType.I32 || dstType is DType.F64 or DType.I64 or DType.I32;
        if (viaDouble)
        {
            Span<double> tmp = stackalloc double[chunk];
            for (long i = 0; i < count; i += chunk)
            {
                int n = (int)Math.Min(chunk, count - i);
                ToDouble(src, srcType, i, tmp[..n]);
                FromDouble(tmp[..n], dst, dstType, i);
            }
        }
        else
        {
            Span<float> tmp = stackalloc float[chunk];
            for (long i = 0; i < count; i += chunk)
            {
                int n = (int)Math.Min(chunk, count - i);
                ToSingle(src, srcType, i, tmp[..n]);
                FromSingle(tmp[..n], dst, dstType, i);
            }
        }
    }

    private static void ToSingle(void* src, DType t, long offset, Span<float> dst)
    {
        int n = dst.Length;
        switch (t)
        {
            case DType.F32: new ReadOnlySpan<float>((float*)src + offset, n).CopyTo(dst); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)src + offset, n), dst); break;
            case DType.BF16:
                var b = (ushort*)src + offset;
                for (int i = 0; i < n; i++) dst[i] = BitConverter.UInt32BitsToSingle((uint)b[i] << 16);
                break;
            case DType.U8:
                var u = (byte*)src + offset;
                for (int i = 0; i < n; i++) dst[i] = u[i];
                break;
            case DType.I8:
                var q = (sbyte*)src + offset;
                for (int i = 0; i < n; i++) dst[i] = q[i];
                break;
            default: throw new NotSupportedException(t.ToString());
        }
    }

    private static void FromSingle(ReadOnlySpan<float> src, void* dst, DType t, long offset)
    {
        int n = src.Length;
        switch (t)
        {
            case DType.F32: src.CopyTo(new Span<float>((float*)dst + offset, n)); break;
            case DType.F16: TensorPrimitives.ConvertToHalf(src, new Span<Half>((Half*)dst + offset, n)); break;
            case DType.BF16:
                var b = (BFloat16*)dst + offset;
                for (int i = 0; i < n; i++) b[i] = (BFloat16)src[i];
                break;
            case DType.U8:
                var u = (byte*)dst + offset;
                for (int i = 0; i < n; i++) u[i] = (byte)src[i];
                break;
            case DType.I8:
                var q = (sbyte*)dst + offset;
                for (int i = 0; i < n; i++) q[i] = (sbyte)src[i];
                break;
            default: throw new NotSupportedException(t.ToString());
        }
    }

    private static void ToDouble(void* src, DType t, long offset, Span<double> dst)
    {
        int n = dst.Length;
        switch (t)
        {
            case DType.F64: new ReadOnlySpan<double>((double*)src + offset, n).CopyTo(dst); break;
            case DType.I64: { var p = (long*)src + offset; for (int i = 0; i < n; i++) dst[i] = p[i]; break; }
            case DType.I32: { var p = (int*)src + offset; for (int i = 0; i < n; i++) dst[i] = p[i]; break; }
            default:
                Span<float> tmp = n <= 1024 ? stackalloc float[n] : new float[n];
                ToSingle(src, t, offset, tmp);
                for (int i = 0; i < n; i++) dst[i] = tmp[i];
                break;
        }
    }

    private static void FromDouble(ReadOnlySpan<double> src, void* dst, DType t, long offset)
    {
        int n = src.Length;
        switch (t)
        {
            case DType.F64: src.CopyTo(new Span<double>((double*)dst + offset, n)); break;
            case DType.I64: { var p = (long*)dst + offset; for (int i = 0; i < n; i++) p[i] = (long)src[i]; break; }
            case DType.I32: { var p = (int*)dst + offset; for (int i = 0; i < n; i++) p[i] = (int)src[i]; break; }
            default:
                Span<float> tmp = n <= 1024 ? stackalloc float[n] : new float[n];
                for (int i = 0; i < n; i++) tmp[i] = (float)src[i];
                FromSingle(tmp, dst, t, offset);
                break;
        }
    }
}
