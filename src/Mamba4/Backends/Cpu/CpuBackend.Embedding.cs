using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void EmbeddingForward(Tensor weight, Tensor ids, Tensor y)
    {
        int num = weight.Shape[0], dim = weight.Shape[1];
        long count = ids.NumElements;
        float* py = y.F32;
        nint pid = ids.DataPointer;
        bool i64 = ids.DType == DType.I64;
        for (long p = 0; p < count; p++)
        {
            long id = Id(pid, i64, p);
            if ((ulong)id >= (ulong)num)
                throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: id {id} at position {p} of ids {ids.Shape} is outside [0, {num}) for weight {weight.Name}{weight.Shape}");
        }
        nint pw = weight.DataPointer;
        var dtype = weight.DType;
        float* scale = dtype == DType.I8 ? NarrowScale(weight).F32 : null;
        CpuParallel.For(count, Math.Max(1, 8192 / Math.Max(1, dim)), (s, e) =>
        {
            for (long p = s; p < e; p++)
            {
                long id = Id(pid, i64, p);
                var row = new Span<float>(py + p * dim, dim);
                if (dtype == DType.F32) new ReadOnlySpan<float>((float*)pw + id * dim, dim).CopyTo(row);
                else
                {
                    DTypeConvert.Convert((void*)(pw + (nint)(id * dim * dtype.ElementSize())), dtype, py + p * dim, DType.F32, dim);
                    if (scale != null) TensorPrimitives.Multiply(row, scale[id], row);
                }
            }
        });
    }

    // Race-free scatter-add: each worker owns a range of columns and walks every position.
    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex)
    {
        int dim = dWeight.Shape[1];
        long count = ids.NumElements;
        float* pdy = dy.F32, pdw = dWeight.F32;
        nint pid = ids.DataPointer;
        bool i64 = ids.DType == DType.I64;
        CpuParallel.For(dim, 64, (c0, c1) =>
        {
            int w = (int)(c1 - c0);
            for (long p = 0; p < count; p++)
            {
                long id = Id(pid, i64, p);
                if (id == paddingIndex) continue;
                var row = new Span<float>(pdw + id * dim + c0, w);
                TensorPrimitives.Add(row, new ReadOnlySpan<float>(pdy + p * dim + c0, w), row);
            }
        });
    }

    private static long Id(nint ids, bool i64, long p) => i64 ? ((long*)ids)[p] : ((int*)ids)[p];
}
