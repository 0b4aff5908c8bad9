using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    private static Span<float> Span(Tensor t, long start, long count) => new((float*)t.DataPointer + start, (int)count);

    private static void Chunked(long n, Action<long, long> body)
    {
        if (n < Simd.ParallelThreshold) body(0, n);
        else CpuParallel.For(n, Simd.ParallelThreshold / 2, body);
    }

    public void Add(Tensor a, Tensor b, Tensor y) =>
        Chunked(y.NumElements, (s, e) => TensorPrimitives.Add(Span(a, s, e - s), Span(b, s, e - s), Span(y, s, e - s)));

    public void Mul(Tensor a, Tensor b, Tensor y) =>
        Chunked(y.NumElements, (s, e) => TensorPrimitives.Multiply(Span(a, s, e - s), Span(b, s, e - s), Span(y, s, e - s)));

    public void Scale(Tensor x, float alpha, Tensor y) =>
        Chunked(y.NumElements, (s, e) => TensorPrimitives.Multiply(Span(x, s, e - s), alpha, Span(y, s, e - s)));

    public void AddInPlace(Tensor dst, Tensor src, float alpha) =>
        Chunked(dst.NumElements, (s, e) =>
        {
            var d = Span(dst, s, e - s);
            if (alpha == 1f) TensorPrimitives.Add(d, Span(src, s, e - s), d);
            else TensorPrimitives.MultiplyAdd(Span(src, s, e - s), alpha, d, d);
        });
}
