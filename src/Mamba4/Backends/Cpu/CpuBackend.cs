using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// The reference backend: SIMD kernels (Vector256 / TensorPrimitives) split across cores.
/// One partial file per kernel family, mirroring <c>Ops/</c>.
/// </summary>
public sealed unsafe partial class CpuBackend : IGruBackend
{
    public static readonly CpuBackend Instance = new();

    private CpuBackend() { }

    public Device Device => Device.Cpu;
    public string Name => "cpu";

    public Storage Allocate(long bytes) => CpuAllocator.Shared.Allocate(bytes);

    public void Fill(Tensor t, float value)
    {
        if (t.DType == DType.F32) new Span<float>((void*)t.DataPointer, checked((int)t.NumElements)).Fill(value);
        else
        {
            using var one = Tensor.From([value]);
            var bytes = t.DType.ElementSize();
            var scratch = stackalloc byte[8];
            DTypeConvert.Convert((void*)one.DataPointer, DType.F32, scratch, t.DType, 1);
            var dst = (byte*)t.DataPointer;
            for (long i = 0; i < t.NumElements; i++)
                Buffer.MemoryCopy(scratch, dst + i * bytes, bytes, bytes);
        }
    }

    public void CopyColumns(Tensor src, int srcCol, Tensor dst, int dstCol, int cols)
    {
        long rows = src.Shape.Rows;
        int sLast = src.Shape.Last, dLast = dst.Shape.Last, es = src.DType.ElementSize();
        var s = (byte*)src.DataPointer;
        var d = (byte*)dst.DataPointer;
        long bytes = (long)cols * es;
        CpuParallel.For(rows, 1024, (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
                Buffer.MemoryCopy(s + (r * sLast + srcCol) * es, d + (r * dLast + dstCol) * es, bytes, bytes);
        });
    }

    // ---- elementwise ----
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

    // ---- reductions ----
    public void Sum(Tensor x, Tensor y)
    {
        var p = x.F32;
        long n = x.NumElements;
        double total = 0;
        const int block = 4096;
        for (long i = 0; i < n; i += block)
            total += TensorPrimitives.Sum(new ReadOnlySpan<float>(p + i, (int)Math.Min(block, n - i)));
        y.F32[0] = (float)total;
    }

    public void SumRows(Tensor x, Tensor y, bool accumulate)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        var px = x.F32;
        var py = y.F32;
        // Columns split across cores; each core walks all rows for its columns (accumulated in float64 blocks).
        CpuParallel.For(d, 256, (c0, c1) =>
        {
            int w = (int)(c1 - c0);
            var acc = new double[w];
            var part = new float[w];
            const int block = 256;
            for (long r0 = 0; r0 < rows; r0 += block)
            {
                Array.Clear(part);
                long r1 = Math.Min(rows, r0 + block);
                for (long r = r0; r < r1; r++)
                    TensorPrimitives.Add(part, new ReadOnlySpan<float>(px + r * d + c0, w), part);
                for (int j = 0; j < w; j++) acc[j] += part[j];
            }
            for (int j = 0; j < w; j++) py[c0 + j] = (float)(accumulate ? py[c0 + j] + acc[j] : acc[j]);
        });
    }

    public void AddRowVector(Tensor y, Tensor bias)
    {
        long rows = y.Shape.Rows;
        int d = y.Shape.Last;
        var py = y.F32;
        var pb = bias.F32;
        CpuParallel.For(rows, RowGrain(d), (r0, r1) =>
        {
            var b = new ReadOnlySpan<float>(pb, d);
            for (long r = r0; r < r1; r++)
            {
                var row = new Span<float>(py + r * d, d);
                TensorPrimitives.Add(row, b, row);
            }
        });
    }
}
