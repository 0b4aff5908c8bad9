using System.Runtime.InteropServices;
using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/selective_scan.cu: the fused selective scan; the plan (states per thread, chunks over L) is chosen here.
public sealed unsafe partial class CudaBackend
{
    private const int ScanBlock = 128, ScanTile = 8, ScanSub = 4;   // selective_scan.cu: block, FT, SUB

    /// <summary>Mirrors <c>struct ScanParams</c> in selective_scan.cu (24 pointers, then 10 ints).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ScanParams
    {
        public nint U, Delta, A, B, C, D, Z, Bias;
        public nint Y, Last, CarryH, SumDt, CarryG;
        public nint DOut, DU, DDelta, DA, DB, DC, DD, DZ, DBias;
        public nint H0, DH0;
        public int Batch, L, Dch, N, ChunkLen, Chunks, Tpc, Selective, Softplus;
        public int FlushSubs;
    }

    /// <summary>Tuning overrides for benchmarks (0 = automatic): forward chunk length, forward states per thread (1, 2, 4, 8 or 16), backward chunk length.</summary>

    internal static int NextPowerOfTwo(int v) => v <= 1 ? 1 : 1 << (32 - int.LeadingZeroCount(v - 1));

    /// <summary>States per thread NS ≤ <paramref name="max"/> and threads per channel TPC (powers of two, NS·TPC ≥ N, TPC ≤ 32).</summary>
    internal static (int States, int ThreadsPerChannel) ScanSplit(int n, int max)
    {
        // selective_scan.cu indexes tiles with shifts and masks: NS, TPC and the channels of a block (ScanBlock / TPC) are powers of two
        if (max < 1 || (max & (max - 1)) != 0) throw new ArgumentException($"SelectiveScan on CUDA: states per thread must be a power of two, got {max}");
        int ns = Math.Min(max, NextPowerOfTwo(n));
        int tpc = NextPowerOfTwo((n + ns - 1) / ns);
        if (tpc > 32) throw new NotSupportedException($"SelectiveScan on CUDA supports d_state up to {32 * max}, got {n}");
        return (ns, tpc);
    }

    /// <summary>Kernel name suffix of the sequence tensors' element type (selective_scan.cu): F32 none, BF16 "_bf16", F16 "_f16".</summary>
    private static string TypeSuffix(DType t) => t switch
    {
        DType.F32 => "",
        DType.BF16 => "_bf16",
        DType.F16 => "_f16",
        _ => throw new NotSupportedException($"SelectiveScan on CUDA: u is {t}; expected F32, BF16 or F16"),
    };

    /// <summary>u, Δ, B, C, z, y (and dout, du, dΔ, dB, dC, dz) share one element type — except y, which may be BF16 beside F32
    /// inputs (<see cref="ForwardKernel"/>'s _obf16), and dΔ with dz (<see cref="BackwardKernel"/>'s _gbf16) — A, D, Δ-bias,
    /// the last state and their gradients are F32.</summary>
    private static void CheckScanTypes(in SelectiveScanArgs a, in SelectiveScanGrads? g)
    {
        DType t = a.U.DType;
        _ = TypeSuffix(t);
        void Same(string name, Tensor? x)
        {
            if (x is not null && x.DType != t) throw new ArgumentException($"SelectiveScan on CUDA: {name} is {x.DType}; it must match u ({t})");
        }
        void F32(string name, Tensor? x)
        {
            if (x is not null && x.DType != DType.F32) throw new ArgumentException($"SelectiveScan on CUDA: {name} is {x.DType}; it must be F32");
        }
        Same("delta", a.Delta); Same("B", a.B); Same("C", a.C); Same("z", a.Z);
        if (!(t == DType.F32 && a.Y.DType == DType.BF16)) Same("y", a.Y);
        F32("A", a.A); F32("D", a.D); F32("deltaBias", a.DeltaBias); F32("lastState", a.LastState); F32("initialState", a.InitialState);
        if (g is { } d)
        {
            Same("dy", d.DY); Same("du", d.DU); Same("dB", d.DB); Same("dC", d.DC);
            if (t == DType.F32 && d.DDelta.DType == DType.BF16)   // the _gbf16 kernels: dΔ and dz in BF16
            {
                if (d.DZ is { } dz && dz.DType != DType.BF16) throw new ArgumentException($"SelectiveScan on CUDA: dz is {dz.DType}; with a BF16 dΔ it must be BF16");
            }
            else { Same("ddelta", d.DDelta); Same("dz", d.DZ); }
            F32("dA", d.DA); F32("dD", d.DD); F32("ddeltaBias", d.DDeltaBias); F32("dinitialState", d.DInitialState);
        }
    }

    private static ScanParams ScanInputs(in SelectiveScanArgs a) => new()
    {
        U = a.U.DataPointer, Delta = a.Delta.DataPointer, A = a.A.DataPointer, B = a.B.DataPointer, C = a.C.DataPointer,
        D = a.D?.DataPointer ?? 0, Z = a.Z?.DataPointer ?? 0, Bias = a.DeltaBias?.DataPointer ?? 0, H0 = a.InitialState?.DataPointer ?? 0,
        Batch = a.Batch, L = a.Length, Dch = a.Channels, N = a.StateSize, Selective = a.Selective ? 1 : 0, Softplus = a.DeltaSoftplus ? 1 : 0,
    };

    // The kernel names composed at run time (selective_scan.cu's macros define them; KernelTableTests checks every name these
    // can give against the generated Kernels.ByFile): scan_{forward,prepare}_ns{NS}[_tpcx]_{sel,lti}{type} and
    // scan_backward_ns{NS}_tpc{TPC}_{sel,lti}_pf{type}, where _tpcx means lanes per channel read at run time (TPC > 1).

    /// <summary>The forward kernel of a split (NS states per thread, TPC lanes per channel) for inputs of <paramref name="type"/>
    /// and y of <paramref name="outputType"/> (the same, or BF16 beside F32 inputs: "_obf16").</summary>
    internal static string ForwardKernel(int ns, int tpc, bool selective, DType type, DType outputType) =>
        $"scan_forward_ns{ns}{(tpc > 1 ? "_tpcx" : "")}_{(selective ? "sel" : "lti")}{(outputType == type ? TypeSuffix(type) : "_obf16")}";

    /// <summary>The time-parallel forward (selective, N = 16; Kernels/selective_scan.cu's scan_forward_lanes) for inputs of
    /// <paramref name="type"/> and y of <paramref name="outputType"/>; <paramref name="wide"/>: the 128-register form (2 blocks an SM).</summary>
    internal static string LanesKernel(DType type, DType outputType, bool wide = false) =>
        $"scan_forward_lanes{(wide ? "_wide" : "")}{(outputType == type ? TypeSuffix(type) : "_obf16")}";

    /// <summary>selective_scan.cu's lanes kernel: 256 threads, 32 channels a block, tiles of 64 steps, N = 16.</summary>
    private const int LanesBlock = 256, LanesChannels = 32, LanesTile = 64, LanesStates = 16;

    /// <summary>The lanes kernel's shared memory: two slots of u, Δ, z [64, 32] and the raw B, C rows [64, 16] (elements of the
    /// input type), B, C as F32 [2][2][16][64], A [32, 16].</summary>
    private static int LanesShared(int elementSize) =>
        (2 * 3 * LanesTile * LanesChannels + 2 * LanesTile * LanesStates) * elementSize + (2 * 2 * LanesStates * LanesTile + LanesChannels * LanesStates) * sizeof(float);

    /// <summary>Whether the forward runs the lanes kernel: only where it is forced (<see cref="ScanForwardPlan.Lanes"/>) and
    /// applies (selective, N = 16). Auto keeps the chunked kernels: measured on an H100 (session 20) the 80-register lanes
    /// kernel was no faster at row 1 in BF16 and slower elsewhere; the 128-register form is not measured yet (`bench cuda`'s
    /// forward-plans table times both beside the chunked kernels; docs/cuda-kernel-notes.md).</summary>
    private static bool ForwardLanes(in ScanParams p) =>
        Backend.Settings.ScanForward is ScanForwardPlan.Lanes or ScanForwardPlan.LanesWide && p.Selective == 1 && p.N == LanesStates;

    /// <summary>The backward's forward sweep (phase 2) of a split.</summary>
    internal static string PrepareKernel(int ns, int tpc, bool selective, DType type) =>
        $"scan_prepare_ns{ns}{(tpc > 1 ? "_tpcx" : "")}_{(selective ? "sel" : "lti")}{TypeSuffix(type)}";

    /// <summary>The main backward kernel of a split (TPC a compile-time constant; with prefetch) for inputs of
    /// <paramref name="type"/> and dΔ, dz of <paramref name="gradientType"/> (the same, or BF16 beside F32 inputs: "_gbf16").</summary>
    internal static string BackwardKernel(int ns, int tpc, bool selective, DType type, DType gradientType) =>
        $"scan_backward_ns{ns}_tpc{tpc}_{(selective ? "sel" : "lti")}_pf{(gradientType == type ? TypeSuffix(type) : "_gbf16")}";

    private static Dim3 ScanGrid(in ScanParams p, int chunks, int block = ScanBlock) =>
        new((uint)((p.Dch + block / p.Tpc - 1) / (block / p.Tpc)), (uint)chunks, (uint)p.Batch);

    /// <summary>The forward's split: NS ≤ 16 states per thread (or <see cref="EngineSettings.ScanForwardStatesPerThread"/>), TPC lanes per channel.</summary>
    private static (int States, int Tpc) ForwardSplit(int n) => ScanSplit(n, Backend.Settings.ScanForwardStatesPerThread > 0 ? Backend.Settings.ScanForwardStatesPerThread : 16);

    /// <summary>Shortest forward chunk (steps) of the wave plan.</summary>
    private const int ScanMinChunk = 128;

    /// <summary>
    /// Forward chunk length (the `waves` plan): as many chunks as fill the GPU's block slots once (SMs × blocks per SM of the
    /// kernel, over the blocks of one chunk), so that phase 1 runs in one full wave, none shorter than 128 steps; but one chunk
    /// where that gives fewer than three, since with C chunks the serial path is about 2·L/C steps (phase 0, then phase 1) and
    /// two more launches: C = 2 gains nothing.
    /// </summary>
    private int ForwardChunkLength(in ScanParams p, string file, string kernel, int shared)
    {
        static int Tiles(int steps) => Math.Max(ScanTile, (steps + ScanTile - 1) / ScanTile * ScanTile);
        if (Backend.Settings.ScanForwardChunk > 0) return Tiles(Backend.Settings.ScanForwardChunk);
        long blocksPerChunk = (long)ScanGrid(p, 1).X * p.Batch;
        int chunks = (int)Math.Max(1, (long)Multiprocessors * BlocksPerMultiprocessor(file, kernel, ScanBlock, shared) / blocksPerChunk);
        int chunkLen = Tiles(Math.Max(ScanMinChunk, (p.L + chunks - 1) / chunks));
        return (p.L + chunkLen - 1) / chunkLen < 3 ? Tiles(p.L) : chunkLen;
    }

    /// <summary>Shared memory of selective_scan.cu's forward (elements of <paramref name="elementSize"/> bytes): tile slots of u, Δ, z (and
    /// dout for scan_prepare) [FT, channels of the block] and (selective) B, C rows [FT, NS·TPC] — three slots when a tile is
    /// prepared one ahead (2-byte rows widened to F32 [2][2·FT·NS·TPC]), else two.</summary>
    private static int ForwardShared(in ScanParams p, int ns, int elementSize, bool prepare = false)
    {
        int channels = ScanBlock / p.Tpc, rows = ScanTile * ns * p.Tpc;
        bool widen = elementSize == 2 && p.Selective == 1;
        int slot = (prepare ? 4 : 3) * ScanTile * channels + (p.Selective == 1 ? 2 * rows : 0);
        return (widen ? 3 : 2) * slot * elementSize + (widen ? 4 * rows * sizeof(float) : 0);
    }

    /// <summary>The bytes, or a clear error where the device cannot give one block that much shared memory.</summary>
    private int RequireShared(int bytes, string pass, int n) => bytes <= MaxSharedMemoryPerBlock ? bytes
        : throw new NotSupportedException($"SelectiveScan {pass} on CUDA needs {bytes:N0} B of shared memory per block for d_state {n}; this device allows {MaxSharedMemoryPerBlock:N0}");

    /// <summary>The backward's shared memory: B, C rows [T, NS·TPC] and each warp's dB, dC rows [F, 2·NS·TPC] (selective; F =
    /// <paramref name="flushSubs"/> sub-blocks), dt [T, channels], checkpoints [T/SUB, block, NS].</summary>
    private static int BackwardShared(bool selective, int chunkLen, int ns, int tpc, int block, int sub, int flushSubs)
    {
        int subs = (chunkLen + sub - 1) / sub, np = ns * tpc;
        return ((selective ? 2 * chunkLen * np + block / 32 * flushSubs * sub * 2 * np : 0) + chunkLen * (block / tpc) + subs * block * ns) * sizeof(float);
    }

    /// <summary>Sub-blocks between the backward's sums of its warps' dB, dC rows (each sum costs two block barriers): a quarter
    /// of the chunk, halved while the shared memory would exceed <paramref name="limit"/> (one sub-block at least, which takes
    /// no more than the block-wide rows it replaces for chunks of 32 steps or more).</summary>
    private static int FlushSubs(bool selective, int chunkLen, int ns, int tpc, int block, int sub, int limit)
    {
        int fs = Math.Max(1, (chunkLen + sub - 1) / sub / 4);
        while (fs > 1 && BackwardShared(selective, chunkLen, ns, tpc, block, sub, fs) > limit) fs /= 2;
        return fs;
    }

    /// <summary>Threads per block (128 or 256) of the main backward kernel; 0 = automatic.</summary>

    /// <summary>Blocks of <paramref name="kernel"/> that fit on one SM at once (the driver's occupancy calculator; 1 if it is missing).</summary>
    internal int BlocksPerMultiprocessor(string file, string kernel, int block, int shared)
    {
        var f = Function(file, kernel);
        if (CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor == null) return 1;
        int n;
        CudaDriver.Check(CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, block, (nuint)shared), $"cuOccupancyMaxActiveBlocksPerMultiprocessor({kernel})");
        return Math.Max(1, n);
    }

    public void SelectiveScanForward(in SelectiveScanArgs args)
    {
        CheckScanTypes(args, null);
        var p = ScanInputs(args);
        if (p.Batch == 0 || p.L == 0 || p.Dch == 0)
        {
            if (args.LastState is { } s)
            {
                if (args.InitialState is { } h0) s.CopyFrom(h0);   // no steps: the state is where it started
                else Fill(s, 0f);
            }
            return;
        }
        if (ForwardLanes(p))
        {
            p.Y = args.Y.DataPointer;
            p.Last = args.LastState?.DataPointer ?? 0;
            p.Chunks = 1;
            p.ChunkLen = p.L;
            Launch(Kernels.SelectiveScan.File, LanesKernel(args.U.DType, args.Y.DType, Backend.Settings.ScanForward == ScanForwardPlan.LanesWide),
                new Dim3((uint)((p.Dch + LanesChannels - 1) / LanesChannels), 1, (uint)p.Batch), LanesBlock,
                RequireShared(LanesShared(args.U.DType.ElementSize()), "forward", p.N), p);
            return;
        }
        var (ns, tpc) = ForwardSplit(p.N);
        p.Tpc = tpc;
        int shared = RequireShared(ForwardShared(p, ns, args.U.DType.ElementSize()), "forward", p.N);
        string kernel = ForwardKernel(ns, tpc, p.Selective == 1, args.U.DType, args.Y.DType);
        int chunkLen = ForwardChunkLength(p, Kernels.SelectiveScan.File, kernel, shared);
        p.ChunkLen = chunkLen;
        p.Chunks = (p.L + chunkLen - 1) / chunkLen;
        p.Y = args.Y.DataPointer;
        p.Last = args.LastState?.DataPointer ?? 0;
        Storage? carry = null, sums = null;
        try
        {
            if (p.Chunks > 1)
            {
                carry = Allocator.Allocate((long)p.Batch * p.Chunks * p.Dch * p.N * sizeof(float));
                sums = Allocator.Allocate((long)p.Batch * p.Chunks * p.Dch * sizeof(float));
                p.CarryH = carry.Pointer;
                p.SumDt = sums.Pointer;
                Launch(Kernels.SelectiveScan.File, kernel, ScanGrid(p, p.Chunks - 1), ScanBlock, shared, p, 0);
                Launch(Kernels.SelectiveScan.File, Kernels.SelectiveScan.ScanCarryForward, GridFor((long)p.Batch * p.Dch * p.N), 256, 0, p);
            }
            Launch(Kernels.SelectiveScan.File, kernel, ScanGrid(p, p.Chunks), ScanBlock, shared, p, 1);
        }
        finally
        {
            carry?.Release();
            sums?.Release();
        }
    }

    public void SelectiveScanBackward(in SelectiveScanArgs args, in SelectiveScanGrads grads)
    {
        CheckScanTypes(args, grads);
        var p = ScanInputs(args);
        Fill(grads.DA, 0f);
        Fill(grads.DB, 0f);
        Fill(grads.DC, 0f);
        if (grads.DD is { } dd0) Fill(dd0, 0f);
        if (grads.DDeltaBias is { } db0) Fill(db0, 0f);
        if (p.Batch == 0 || p.L == 0 || p.Dch == 0)
        {
            foreach (var g in new[] { grads.DU, grads.DDelta, grads.DZ, grads.DInitialState })
                if (g is not null) Fill(g, 0f);
            return;
        }
        // the long passes (local states, local gradients) use the forward's split; the main backward 4 states per thread
        var (nsF, tpcF) = ForwardSplit(p.N);
        var (ns, tpc) = ScanSplit(p.N, 4);
        int block = Backend.Settings.ScanBackwardBlock > 0 ? Backend.Settings.ScanBackwardBlock : 2 * ScanBlock;
        const int sub = ScanSub;
        // 64 steps per chunk unless its shared memory would leave fewer than four blocks per SM (then 32, 16)
        int chunkLen = Backend.Settings.ScanBackwardChunk, fourBlocks = 57 * 1024 * block / ScanBlock;
        int flushLimit = Math.Min(fourBlocks, MaxSharedMemoryPerBlock);   // the flush rows are cut before the chunk is
        bool selective = p.Selective == 1;
        // a chunk length's flush group and shared memory
        (int FlushSubs, int Shared) Plan(int len)
        {
            int fs = FlushSubs(selective, len, ns, tpc, block, sub, flushLimit);
            return (fs, BackwardShared(selective, len, ns, tpc, block, sub, fs));
        }
        if (chunkLen <= 0)
        {
            chunkLen = 64;
            while (chunkLen > 16 && Plan(chunkLen).Shared > fourBlocks) chunkLen /= 2;
        }
        chunkLen = (chunkLen + 7) / 8 * 8;
        (p.FlushSubs, int shared) = Plan(chunkLen);
        p.Tpc = tpc;
        p.ChunkLen = chunkLen;
        p.Chunks = (p.L + chunkLen - 1) / chunkLen;
        p.DOut = grads.DY.DataPointer;
        p.DU = grads.DU.DataPointer;
        p.DDelta = grads.DDelta.DataPointer;
        p.DA = grads.DA.DataPointer;
        p.DD = grads.DD?.DataPointer ?? 0;
        p.DZ = args.Z is null ? 0 : grads.DZ?.DataPointer ?? 0;
        p.DBias = grads.DDeltaBias?.DataPointer ?? 0;
        p.DH0 = grads.DInitialState?.DataPointer ?? 0;

        // FlushSubs already cut the flush rows to fit the device (one sub-block at least), so a chunk that still does not fit
        // is too long
        while (shared > MaxSharedMemoryPerBlock && chunkLen > 8)
        {
            chunkLen /= 2;
            p.ChunkLen = chunkLen;
            p.Chunks = (p.L + chunkLen - 1) / chunkLen;
            (p.FlushSubs, shared) = Plan(chunkLen);
        }
        RequireShared(shared, "backward", p.N);
        // dB, dC are sums over channels (atomics): F32, converted to the element type at the end
        DType type = args.U.DType;
        bool half = type != DType.F32;
        Storage? carryH = null, carryG = null, sums = null, dB32 = null, dC32 = null;
        try
        {
            if (half)
            {
                dB32 = Allocator.Allocate(grads.DB.NumElements * sizeof(float));
                dC32 = Allocator.Allocate(grads.DC.NumElements * sizeof(float));
                CudaDriver.Check(CudaDriver.cuMemsetD32Async((ulong)dB32.Pointer, 0, (nuint)grads.DB.NumElements, Stream), "cuMemsetD32Async");
                CudaDriver.Check(CudaDriver.cuMemsetD32Async((ulong)dC32.Pointer, 0, (nuint)grads.DC.NumElements, Stream), "cuMemsetD32Async");
            }
            p.DB = half ? dB32!.Pointer : grads.DB.DataPointer;
            p.DC = half ? dC32!.Pointer : grads.DC.DataPointer;
            if (p.Chunks > 1)
            {
                long states = (long)p.Batch * p.Chunks * p.Dch * p.N * sizeof(float);
                carryH = Allocator.Allocate(states);
                carryG = Allocator.Allocate(states);
                sums = Allocator.Allocate((long)p.Batch * p.Chunks * p.Dch * sizeof(float));
                p.CarryH = carryH.Pointer;
                p.CarryG = carryG.Pointer;
                p.SumDt = sums.Pointer;
                // one forward sweep per chunk gives h̃_c, S_c and õ_c (phase 2); the carries turn them into H_c and E_c
                var pf = p with { Tpc = tpcF };
                Launch(Kernels.SelectiveScan.File, PrepareKernel(nsF, tpcF, selective, type), ScanGrid(pf, p.Chunks), ScanBlock,
                    RequireShared(ForwardShared(pf, nsF, type.ElementSize(), prepare: true), "backward (prepare sweep)", p.N), pf);
                Launch(Kernels.SelectiveScan.File, Kernels.SelectiveScan.ScanCarries, new Dim3(GridFor((long)p.Batch * p.Dch * p.N), 2), 256, 0, p);
            }
            Launch(Kernels.SelectiveScan.File, BackwardKernel(ns, tpc, selective, type, grads.DDelta.DType),
                ScanGrid(p, p.Chunks, block), block, shared, p);
            if (half)
            {
                string convert = type == DType.BF16 ? Kernels.SelectiveScan.ScanToBf16 : Kernels.SelectiveScan.ScanToF16;
                Launch(Kernels.SelectiveScan.File, convert, GridFor(grads.DB.NumElements), 256, 0, dB32!.Pointer, grads.DB, grads.DB.NumElements);
                Launch(Kernels.SelectiveScan.File, convert, GridFor(grads.DC.NumElements), 256, 0, dC32!.Pointer, grads.DC, grads.DC.NumElements);
            }
        }
        finally
        {
            carryH?.Release();
            carryG?.Release();
            sums?.Release();
            dB32?.Release();
            dC32?.Release();
        }
    }

    // ---- recurrent step (decoding) ----
    public void SelectiveScanStep(Tensor u, Tensor delta, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? z, Tensor? deltaBias,
        bool deltaSoftplus, bool selective, Tensor ssmState, Tensor y)
    {
        int batch = u.Shape[0], dim = u.Shape[1], n = a.Shape[1];
        Map(Kernels.SelectiveScan.File, Kernels.SelectiveScan.ScanStep, (long)batch * dim, u, delta, a, b, c, d, z, deltaBias, deltaSoftplus, selective, ssmState, y, batch, dim, n);
    }
}
