using System.Runtime.InteropServices;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Mamba-2's SSD scan on CUDA (Ops/SsdScan.cs has the math; Kernels/ssd_scan.cu's header the chunked plan; the plain twin is
// Cpu/SsdScanReference.cs). F32 tensors; scratch: dt, cum [b, H, L], the chunk-start states [b, chunks, H, P, N] (and in the
// backward the gradient states of the same size, five per-step scalars [b, H, L] and a sum by 32 steps of s [b, H, L, 2⌈chunk/64⌉]), C·B within each chunk [b, chunks, G, Qp, Qp]
// (and in the backward its gradient summed over the group's heads, of the same size):
// nothing of size [b, L, H, P, N].
public sealed unsafe partial class CudaBackend
{
    /// <summary>Mirrors <c>struct SsdParams</c> in ssd_scan.cu (27 pointers, 2 floats, 10 ints).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct SsdParams
    {
        public nint X, Dt, A, B, C, D, DtBias, DY;
        public nint Y, LastState;
        public nint DtP, Cum;
        public nint States, RStates;
        public nint Scal, ChunkDot, Partials, Cbm, Dcb, DiagParts;
        public nint DX, DDt, DA, DB, DC, DD, DDtBias;
        public float DtMin, DtMax;
        public int Batch, L, H, P, G, N, Chunk, Chunks, Softplus, Tiles;
    }

    /// <summary>ssd_scan.cu's chunk kernels hold all P columns in one block (up to 128) and N in blocks of 64.</summary>
    private const int SsdMaxHeadDim = 128, SsdMaxStateSize = 256, SsdBlock = 256;

    /// <summary>The chunk kernel of a mode over P columns (fwd, bf, bx) for <paramref name="columns"/> columns: 16 threads of
    /// 4 (up to 64 columns) or 8 (up to 128) across.</summary>
    internal static string SsdMixKernel(string mode, int columns) => $"ssd_mix_{mode}_c{SsdMixColumnsPerThread(columns)}";

    private static int SsdMixColumnsPerThread(int columns) => columns <= 64 ? 4 : 8;

    /// <summary>A kernel with chunk products as <see cref="MatmulPrecision"/> asks: F32 → the F32-accurate one (3xTF32 on the
    /// tensor cores), TF32 or BF16 → its twin with single TF32 products (…_tf32: ~1e-3 relative, as mamba_ssm's Triton
    /// <c>tl.dot</c> on F32 inputs; the scan's sums, exponents and states stay F32). bx and ssd_dcb, which make the gradients
    /// of dt and A (sums that cancel), stay F32-accurate in every mode and have no twin.</summary>
    internal string SsdProducts(string kernel) => MatmulPrecision == MatmulPrecision.F32 ? kernel : kernel + "_tf32";

    private static SsdParams SsdInputs(in SsdScanArgs a)
    {
        if (a.HeadDim < 1 || a.HeadDim > SsdMaxHeadDim)
            throw new NotSupportedException($"SsdScan on CUDA supports head dims 1..{SsdMaxHeadDim}, got x {a.X.Shape}");
        if (a.StateSize < 1 || a.StateSize > SsdMaxStateSize)
            throw new NotSupportedException($"SsdScan on CUDA supports d_state 1..{SsdMaxStateSize}, got B {a.B.Shape}");
        int chunk = Math.Max(1, Math.Min(a.ChunkSize, a.Length));
        int chunks = (a.Length + chunk - 1) / chunk;
        if ((long)a.Batch * a.Heads > 65535 || chunks > 65535)
            throw new NotSupportedException($"SsdScan on CUDA: batch·heads ({a.Batch}·{a.Heads}) and chunks ({chunks}) must each be at most 65,535");
        var p = new SsdParams
        {
            X = a.X.DataPointer, Dt = a.Dt.DataPointer, A = a.A.DataPointer, B = a.B.DataPointer, C = a.C.DataPointer,
            D = a.D?.DataPointer ?? 0, DtBias = a.DtBias?.DataPointer ?? 0,
            DtMin = a.DtMin, DtMax = a.DtMax, Softplus = a.DtSoftplus ? 1 : 0,
            Batch = a.Batch, L = a.Length, H = a.Heads, P = a.HeadDim, G = a.Groups, N = a.StateSize,
            Chunk = chunk, Chunks = chunks, Tiles = (a.HeadDim * a.StateSize + SsdBlock - 1) / SsdBlock,
        };
        // the chunk kernels index x, dy, B, C, the chunk states and the C·B matrices by 32-bit offsets
        long largest = Math.Max(Math.Max((long)a.Batch * a.Length * a.Heads * a.HeadDim, (long)a.Batch * a.Length * a.Groups * a.StateSize),
            Math.Max(SsdStateFloats(p), SsdChunkMatrixFloats(p)));
        if (largest > int.MaxValue)
            throw new NotSupportedException($"SsdScan on CUDA: x {a.X.Shape}, B {a.B.Shape}, chunk {chunk} need a tensor of {largest:N0} elements; " +
                $"the chunk kernels index by 32-bit offsets (at most {int.MaxValue:N0}): split the batch or the sequence, or use a larger chunk");
        return p;
    }

    private nint SsdScratch(List<Storage> scratch, long floats)
    {
        var s = Allocator.Allocate(Math.Max(1, floats) * sizeof(float));
        scratch.Add(s);
        return s.Pointer;
    }

    /// <summary>A chunk's 64-step tiles (ssd_scan.cu's MIX_ROWS): the chunk kernels' row tiles; 64 of them is the row stride
    /// of the chunk matrices C·B and dCB (SSD_QP).</summary>
    private static int SsdRowTiles(in SsdParams p) => (p.Chunk + 63) / 64;

    /// <summary>Floats of the [b, chunks, H, P, N] chunk states (and of their gradients).</summary>
    private static long SsdStateFloats(in SsdParams p) => (long)p.Batch * p.Chunks * p.H * p.P * p.N;

    /// <summary>Floats of a [b, chunks, G, Qp, Qp] chunk matrix (C·B, or its gradient dCB), Qp = 64 · <see cref="SsdRowTiles"/>.</summary>
    private static long SsdChunkMatrixFloats(in SsdParams p) => (long)p.Batch * p.Chunks * p.G * SsdRowTiles(p) * SsdRowTiles(p) * 64 * 64;

    private static Dim3 SsdStateGrid(in SsdParams p) => new((uint)((p.N + 63) / 64 * ((p.P + 63) / 64)), (uint)p.Chunks, (uint)(p.Batch * p.H));   // 64 × 64 tiles of (P, N)
    /// <summary>The chunk kernels' grid: 64-row tiles of each chunk (times the column blocks of N for db, dc), chunks, streams.</summary>
    private static Dim3 SsdChunkGrid(in SsdParams p, int streams, int columnBlocks = 1) =>
        new((uint)(SsdRowTiles(p) * columnBlocks), (uint)p.Chunks, (uint)streams);

    /// <summary>dt after bias/softplus/clamp and its chunk cumsum, the state at each chunk's start (and the last state when asked),
    /// and C_t·B_s within each chunk and group.</summary>
    private void SsdChunkStates(ref SsdParams p, List<Storage> scratch)
    {
        long steps = (long)p.Batch * p.H * p.L;
        p.DtP = SsdScratch(scratch, steps);
        p.Cum = SsdScratch(scratch, 2 * steps);   // double
        p.States = SsdScratch(scratch, SsdStateFloats(p));
        const string file = Kernels.SsdScan.File;
        Launch(file, Kernels.SsdScan.SsdDtCumsum, GridFor(32L * p.Batch * p.Chunks * p.H), SsdBlock, 0, p);   // a warp per (b, c, h)
        Launch(file, SsdProducts(Kernels.SsdScan.SsdChunkState), SsdStateGrid(p), SsdBlock, 0, p);
        Launch(file, Kernels.SsdScan.SsdStatePassing, new Dim3((uint)p.Tiles, (uint)(p.Batch * p.H)), SsdBlock, 0, p);
        int tiles = (p.Chunk + 31) / 32;   // ssd_bmm's 32 × 32 tiles
        p.Cbm = SsdScratch(scratch, SsdChunkMatrixFloats(p));
        Launch(file, Kernels.SsdScan.SsdBmm, new Dim3((uint)(tiles * tiles), (uint)p.Chunks, (uint)(p.Batch * p.G)), SsdBlock, 0, p);
    }

    public void SsdScanForward(in SsdScanArgs args)
    {
        var p = SsdInputs(args);
        if (p.Batch == 0 || p.L == 0)
        {
            if (args.LastState is { } s) Fill(s, 0f);
            return;
        }
        p.Y = args.Y.DataPointer;
        p.LastState = args.LastState?.DataPointer ?? 0;
        var scratch = new List<Storage>();
        try
        {
            SsdChunkStates(ref p, scratch);
            Launch(Kernels.SsdScan.File, SsdProducts(SsdMixKernel("fwd", p.P)), SsdChunkGrid(p, p.Batch * p.H), SsdBlock, 0, p);
        }
        finally
        {
            foreach (var s in scratch) s.Release();
        }
    }

    public void SsdScanBackward(in SsdScanArgs args, in SsdScanGrads grads)
    {
        var p = SsdInputs(args);
        if (p.Batch == 0 || p.L == 0)
        {
            foreach (var g in new[] { grads.DX, grads.DDt, grads.DA, grads.DB, grads.DC, grads.DD, grads.DDtBias })
                if (g is not null) Fill(g, 0f);
            return;
        }
        p.DY = grads.DY.DataPointer;
        p.DX = grads.DX.DataPointer;
        p.DDt = grads.DDt.DataPointer;
        p.DA = grads.DA.DataPointer;
        p.DB = grads.DB.DataPointer;
        p.DC = grads.DC.DataPointer;
        p.DD = grads.DD?.DataPointer ?? 0;
        p.DDtBias = grads.DDtBias?.DataPointer ?? 0;
        const string file = Kernels.SsdScan.File;
        var scratch = new List<Storage>();
        try
        {
            SsdChunkStates(ref p, scratch);
            long streamChunks = (long)p.Batch * p.H * p.Chunks;
            p.RStates = SsdScratch(scratch, SsdStateFloats(p));
            p.Scal = SsdScratch(scratch, 5L * p.Batch * p.H * p.L);
            p.ChunkDot = SsdScratch(scratch, streamChunks * p.Tiles);
            p.Partials = SsdScratch(scratch, 3 * streamChunks);
            // the gradient states entering each chunk from the later ones, and K_c
            Launch(file, SsdProducts(Kernels.SsdScan.SsdChunkDstate), SsdStateGrid(p), SsdBlock, 0, p);
            Launch(file, Kernels.SsdScan.SsdStatePassingBackward, new Dim3((uint)p.Tiles, (uint)(p.Batch * p.H)), SsdBlock, 0, p);
            // per step: the forward's off part dotted with dy; dx and x·G B
            Launch(file, SsdProducts(SsdMixKernel("bf", p.P)), SsdChunkGrid(p, p.Batch * p.H), SsdBlock, 0, p);
            Launch(file, SsdMixKernel("bx", p.P), SsdChunkGrid(p, p.Batch * p.H), SsdBlock, 0, p);
            // the diagonal part's ∂loss/∂(C_t·B_s) summed over each group's heads, then dB and dC: the heads' off parts and the
            // group's diagonal part
            int qt = SsdRowTiles(p);
            p.Dcb = SsdScratch(scratch, SsdChunkMatrixFloats(p));
            p.DiagParts = SsdScratch(scratch, (long)p.Batch * p.H * p.L * 2 * qt);   // by 32 steps of s
            Launch(file, Kernels.SsdScan.SsdDcb, new Dim3((uint)(qt * qt), (uint)p.Chunks, (uint)(p.Batch * p.G)), SsdBlock, 0, p);
            // N in blocks of 64 columns: twice the blocks of 128, and half the registers (128 columns held 255 and spilled)
            int columnBlocks = (p.N + 63) / 64;
            Launch(file, SsdProducts(Kernels.SsdScan.SsdMixDbC4), SsdChunkGrid(p, p.Batch * p.G, columnBlocks), SsdBlock, 0, p);
            Launch(file, SsdProducts(Kernels.SsdScan.SsdMixDcC4), SsdChunkGrid(p, p.Batch * p.G, columnBlocks), SsdBlock, 0, p);
            // ddt, and dA, dD, dDtBias by chunk, then by head
            Launch(file, Kernels.SsdScan.SsdFinalize, GridFor(32 * streamChunks), SsdBlock, 0, p);   // a warp per (b, c, h)
            Launch(file, Kernels.SsdScan.SsdReduce, GridFor(p.H), SsdBlock, 0, p);
        }
        finally
        {
            foreach (var s in scratch) s.Release();
        }
    }

    // ---- recurrent step (decoding): a warp per (b, h, p) row of the state ----
    public void SsdScanStep(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias, bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y)
    {
        int batch = x.Shape[0], heads = x.Shape[1], headDim = x.Shape[2], groups = b.Shape[1], n = b.Shape[2];
        long rows = (long)batch * heads * headDim;
        if (rows == 0) return;
        Launch(Kernels.SsdScan.File, Kernels.SsdScan.SsdStep, (uint)((rows + 7) / 8), SsdBlock, 0,
            x, dt, a, b, c, d, dtBias, dtSoftplus, dtMin, dtMax, ssmState, y, batch, heads, headDim, groups, n);
    }
}
