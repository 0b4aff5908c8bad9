using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// The reference backend: SIMD kernels (Vector256 / TensorPrimitives) split across cores.
/// One partial file per kernel family, mirroring <c>Ops/</c>.
/// </summary>
public sealed unsafe partial class CpuBackend : IGruBackend, IMambaStepBackend
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

    // ---- shared drivers ----
    /// <summary>Rows per parallel chunk so a chunk holds about 16K elements.</summary>
    private static long RowGrain(int d) => Math.Max(1, 16384 / Math.Max(1, d));

    private delegate void RowBody(long r0, long r1, Span<float> dwPart, Span<float> dbPart, Span<float> scratch1, Span<float> scratch2);

    /// <summary>
    /// Runs <paramref name="body"/> over row chunks in parallel; each chunk accumulates its own partial
    /// column sums (dw, db), which are then added in a fixed order (deterministic, race-free).
    /// </summary>
    private static void RowsWithColumnSums(long rows, int d, bool withBias, Tensor dWeight, Tensor? dBias, RowBody body)
    {
        int chunks = (int)Math.Max(1, Math.Min(CpuParallel.Threads * 2L, (rows + RowGrain(d) - 1) / RowGrain(d)));
        long per = (rows + chunks - 1) / chunks;
        using var partials = Tensor.Zeros(new Shape(chunks, 4, d)).Persist();
        float* pp = partials.F32;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = CpuParallel.Threads }, c =>
        {
            long r0 = c * per, r1 = Math.Min(rows, r0 + per);
            float* basePtr = pp + (long)c * 4 * d;
            if (r0 < r1)
                body(r0, r1, new Span<float>(basePtr, d), withBias ? new Span<float>(basePtr + d, d) : default,
                    new Span<float>(basePtr + 2 * d, d), new Span<float>(basePtr + 3 * d, d));
        });
        var dw = new Span<float>(dWeight.F32, d);
        dw.Clear();
        for (int c = 0; c < chunks; c++) TensorPrimitives.Add(dw, new ReadOnlySpan<float>(pp + (long)c * 4 * d, d), dw);
        if (dBias is not null)
        {
            var db = new Span<float>(dBias.F32, d);
            db.Clear();
            for (int c = 0; c < chunks; c++) TensorPrimitives.Add(db, new ReadOnlySpan<float>(pp + (long)c * 4 * d + d, d), db);
        }
    }
}
