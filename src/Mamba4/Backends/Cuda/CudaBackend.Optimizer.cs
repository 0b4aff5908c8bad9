using System.Runtime.InteropServices;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/optimizer.cu (AdamW over every parameter in one launch) and the gradient norm of reduce.cu: both take a
// table of chunks (pointer + count, ≤ ChunkElements each) built here and copied to the device, one block per chunk.
public sealed unsafe partial class CudaBackend
{
    private const long ChunkElements = 1 << 16;

    [StructLayout(LayoutKind.Sequential)]
    private struct AdamWChunk
    {
        public nint P, G, M, V;
        public long N, First, RowLength, SkipRow;
        public float WeightDecay;
        public int Pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SquaresChunk
    {
        public nint X;
        public long N;
    }

    /// <summary>Copies <paramref name="table"/> to a new device block (released by the caller after the launch that reads it).</summary>
    private Storage Upload<T>(List<T> table) where T : unmanaged
    {
        var block = Allocator.Allocate(Math.Max(1, table.Count) * sizeof(T));
        var span = CollectionsMarshal.AsSpan(table);
        fixed (T* p = span) CopyFromHost((nint)p, block.Pointer, (long)table.Count * sizeof(T));
        return block;
    }

    public void AdamWStep(IReadOnlyList<AdamWParameter> parameters, float lr, float beta1, float beta2, float eps, float bc1, float bc2, float gradScale = 1f)
    {
        var chunks = new List<AdamWChunk>();
        foreach (var (p, g, m, v, wd, skip) in parameters)
        {
            long n = p.NumElements;
            if (g.NumElements != n || m.NumElements != n || v.NumElements != n)
                throw new ArgumentException($"AdamW: {p.Name}{p.Shape} has gradient {g.Shape} and moments {m.Shape}, {v.Shape}");
            for (long first = 0; first < n; first += ChunkElements)
                chunks.Add(new AdamWChunk
                {
                    P = p.DataPointer + (nint)(first * 4), G = g.DataPointer + (nint)(first * 4), M = m.DataPointer + (nint)(first * 4),
                    V = v.DataPointer + (nint)(first * 4), N = Math.Min(ChunkElements, n - first), First = first,
                    RowLength = Math.Max(1, p.Shape.Last), SkipRow = skip, WeightDecay = wd,
                });
        }
        if (chunks.Count == 0) return;
        var table = Upload(chunks);
        try { Launch(Kernels.Optimizer.File, Kernels.Optimizer.AdamwMulti, chunks.Count, 256, 0, table.Pointer, lr, beta1, beta2, eps, bc1, bc2, gradScale); }
        finally { table.Release(); }
    }

    public double SumOfSquares(IReadOnlyList<Tensor> xs)
    {
        var chunks = new List<SquaresChunk>();
        foreach (var x in xs)
            for (long first = 0; first < x.NumElements; first += ChunkElements)
                chunks.Add(new SquaresChunk { X = x.DataPointer + (nint)(first * 4), N = Math.Min(ChunkElements, x.NumElements - first) });
        if (chunks.Count == 0) return 0;
        var table = Upload(chunks);
        var partial = Allocator.Allocate(chunks.Count * sizeof(double) + sizeof(double));
        try
        {
            nint total = partial.Pointer + chunks.Count * sizeof(double);
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumSquaresPartials, chunks.Count, 256, 0, table.Pointer, partial.Pointer);
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumSquaresFinal, 1, 256, 0, partial.Pointer, chunks.Count, total);
            double result;
            CopyToHost(total, (nint)(&result), sizeof(double));
            return result;
        }
        finally
        {
            table.Release();
            partial.Release();
        }
    }
}
