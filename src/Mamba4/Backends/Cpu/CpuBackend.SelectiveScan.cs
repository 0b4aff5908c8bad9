using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// The fused selective scan (S6) on the CPU; the math and its plain twin are in SelectiveScanReference.cs.
//
// Vectorised over channels: one Vector256 holds 8 consecutive channels d0..d0+7 of a time step (the
// layout is channels-last, so u_t[d0..d0+7] is one load). A block of 8 channels walks the sequence
// with its state h[n] (N vectors, L1-resident scratch) and evaluates exp(dt·A[:, n]) for 8 channels at a
// time; A (and B, C when time-invariant) are transposed once per call to [N, D'] (D' = D rounded up to
// 8, zero padded) so that A[d0..d0+7, n] is one load. The channel tail (D % 8) runs the same code with
// masked loads and stores; padded lanes see u = A = 0 and keep h = 0.
//
// Forward: parallel over (batch × channel block); nothing but y (and h_L) is written.
// Backward: parallel over groups of channel blocks. For each (block, batch) the states are recomputed,
// never stored for the whole sequence: pass 1 runs the recurrence and keeps h every K steps (the chunk
// checkpoints, [L/K, N] vectors); then the chunks are visited last to first, each recomputed from its
// checkpoint into a K-step buffer of h_t and a_t = exp(dt_t·A) (no exp in the reverse sweep), and the
// reverse recurrence runs over it. Extra memory: per worker O(L/K·N + K·N) vectors, plus for selective
// B/C one partial dB/dC per extra group ([batch, L, N] each, groups ≤ D/N, so ≤ batch·L·D floats), summed
// at the end: channel reductions are race-free without atomics. dA, dD, dbias and time-invariant dB/dC
// reduce over batch and time inside a block, which one worker owns.
public sealed unsafe partial class CpuBackend
{
    private const int ScanLanes = 8;

    /// <summary>Pointers and sizes of one scan call, captured by the parallel bodies.</summary>
    private struct ScanPlan
    {
        public float* U, Delta, Z, Y, B, C, LastState;
        /// <summary>Aᵀ [N, Dp]; for time-invariant B, C also Bᵀ, Cᵀ [N, Dp]; D and bias [Dp] (zeros when absent).</summary>
        public float* At, Bt, Ct, Skip, Bias;
        public int Batch, L, D, N, Dp, Blocks;
        public bool Selective, Softplus, HasZ;

        // backward
        public float* DY, DU, DDelta, DZ, DA, DB, DC, DD, DBias;
        /// <summary>Partial dB, dC of groups 1.. (group 0 writes DB, DC directly).</summary>
        public float* PartialB, PartialC;
        public float* Scratch;
        public long ScratchPerSlot;
        public int Chunk, Groups;
    }

    public void SelectiveScanForward(in SelectiveScanArgs args)
    {
        var plan = Plan(args, out var paramStorage);
        try
        {
            plan.Y = args.Y.F32;
            plan.LastState = args.LastState is { } ls ? ls.F32 : null;
            long items = (long)plan.Batch * plan.Blocks;
            if (items == 0)
            {
                if (args.LastState is { } s) Fill(s, 0f);
                return;
            }
            int slots = (int)Math.Min(items, 4L * CpuParallel.Threads);
            plan.ScratchPerSlot = RoundUp64((long)plan.N * ScanLanes);
            var scratch = CpuAllocator.Shared.Allocate(plan.ScratchPerSlot * slots * sizeof(float));
            try
            {
                plan.Scratch = (float*)scratch.Pointer;
                var p = plan;
                CpuParallel.For(slots, 1, (s0, s1) =>
                {
                    for (long s = s0; s < s1; s++)
                    {
                        var h = (Vector256<float>*)(p.Scratch + s * p.ScratchPerSlot);
                        long i0 = items * s / slots, i1 = items * (s + 1) / slots;
                        for (long i = i0; i < i1; i++)
                            ScanForwardBlock(p, (int)(i / p.Blocks), (int)(i % p.Blocks), h);
                    }
                });
            }
            finally { scratch.Release(); }
        }
        finally { paramStorage.Release(); }
    }

    public void SelectiveScanBackward(in SelectiveScanArgs args, in SelectiveScanGrads grads)
    {
        var plan = Plan(args, out var paramStorage);
        Storage? partials = null, scratch = null;
        try
        {
            plan.DY = grads.DY.F32;
            plan.DU = grads.DU.F32;
            plan.DDelta = grads.DDelta.F32;
            plan.DA = grads.DA.F32;
            plan.DB = grads.DB.F32;
            plan.DC = grads.DC.F32;
            plan.DD = grads.DD is { } dd ? dd.F32 : null;
            plan.DZ = plan.HasZ && grads.DZ is { } dz ? dz.F32 : null;
            plan.DBias = grads.DDeltaBias is { } db ? db.F32 : null;
            Fill(grads.DB, 0f);
            Fill(grads.DC, 0f);
            if (plan.Blocks == 0 || plan.L == 0 || plan.Batch == 0)
            {
                // Nothing flows: every gradient is zero (or empty).
                foreach (var g in new[] { grads.DU, grads.DDelta, grads.DA, grads.DD, grads.DZ, grads.DDeltaBias })
                    if (g is not null) Fill(g, 0f);
                return;
            }

            // K steps per chunk: the chunk buffers (h and a, K·N vectors each) stay within about 32 KB.
            plan.Chunk = Math.Clamp(512 / Math.Max(1, plan.N), 8, 64);
            int chunks = (plan.L + plan.Chunk - 1) / plan.Chunk;
            int groups = Math.Min(plan.Blocks, 4 * CpuParallel.Threads);
            long bln = (long)plan.Batch * plan.L * plan.N;
            if (plan.Selective) groups = Math.Clamp(Math.Min(groups, plan.D / Math.Max(1, plan.N)), 1, plan.Blocks);
            plan.Groups = groups;
            if (plan.Selective && groups > 1)
            {
                partials = CpuAllocator.Shared.Allocate(2 * (groups - 1) * bln * sizeof(float));
                plan.PartialB = (float*)partials.Pointer;
                plan.PartialC = plan.PartialB + (groups - 1) * bln;
                new Span<float>(plan.PartialB, checked((int)(2 * (groups - 1) * bln))).Clear();
            }

            // Per group: checkpoints [chunks, N], states [K + 1, N], decays [K, N], dt [K], then
            // dh, dA, dB, dC accumulators and the two reduction rows [Np] (vectors of 8 floats).
            int np = (plan.N + ScanLanes - 1) / ScanLanes * ScanLanes;
            long vectors = (long)chunks * plan.N + (2L * plan.Chunk + 1) * plan.N + plan.Chunk + 4L * plan.N + 2L * np + 4;
            plan.ScratchPerSlot = RoundUp64(vectors * ScanLanes);
            scratch = CpuAllocator.Shared.Allocate(plan.ScratchPerSlot * groups * sizeof(float));
            plan.Scratch = (float*)scratch.Pointer;

            var p = plan;
            CpuParallel.For(groups, 1, (g0, g1) =>
            {
                for (long g = g0; g < g1; g++)
                {
                    int b0 = (int)(p.Blocks * g / p.Groups), b1 = (int)(p.Blocks * (g + 1) / p.Groups);
                    for (int blk = b0; blk < b1; blk++) ScanBackwardBlock(p, (int)g, blk);
                }
            });

            if (partials is not null)
            {
                // dB, dC = Σ over groups of the partials (group 0 wrote into dB, dC).
                float* pb = plan.DB, pc = plan.DC, qb = plan.PartialB, qc = plan.PartialC;
                CpuParallel.For(bln, 1 << 14, (s, e) =>
                {
                    for (int g = 0; g < groups - 1; g++)
                    {
                        var rb = new ReadOnlySpan<float>(qb + g * bln + s, (int)(e - s));
                        var rc = new ReadOnlySpan<float>(qc + g * bln + s, (int)(e - s));
                        var db = new Span<float>(pb + s, (int)(e - s));
                        var dc = new Span<float>(pc + s, (int)(e - s));
                        System.Numerics.Tensors.TensorPrimitives.Add(db, rb, db);
                        System.Numerics.Tensors.TensorPrimitives.Add(dc, rc, dc);
                    }
                });
            }
        }
        finally
        {
            scratch?.Release();
            partials?.Release();
            paramStorage.Release();
        }
    }

    private static long RoundUp64(long floats) => (floats + 15) / 16 * 16;

    /// <summary>Reads the arguments and writes the transposed, padded parameters into a pooled block.</summary>
    private static ScanPlan Plan(in SelectiveScanArgs a, out Storage paramStorage)
    {
        var p = new ScanPlan
        {
            U = a.U.F32, Delta = a.Delta.F32, B = a.B.F32, C = a.C.F32, Z = a.Z is { } z ? z.F32 : null,
            Batch = a.Batch, L = a.Length, D = a.Channels, N = a.StateSize,
            Selective = a.Selective, Softplus = a.DeltaSoftplus, HasZ = a.Z is not null,
        };
        p.Dp = (p.D + ScanLanes - 1) / ScanLanes * ScanLanes;
        p.Blocks = p.Dp / ScanLanes;
        long matrix = (long)p.N * p.Dp;
        long total = matrix * (p.Selective ? 1 : 3) + 2L * p.Dp;
        paramStorage = CpuAllocator.Shared.Allocate(Math.Max(1, total) * sizeof(float));
        var basePtr = (float*)paramStorage.Pointer;
        new Span<float>(basePtr, checked((int)total)).Clear();
        p.At = basePtr;
        p.Skip = p.At + matrix;
        p.Bias = p.Skip + p.Dp;
        Transpose(a.A.F32, p.At, p.D, p.N, p.Dp);
        if (!p.Selective)
        {
            p.Bt = p.Bias + p.Dp;
            p.Ct = p.Bt + matrix;
            Transpose(a.B.F32, p.Bt, p.D, p.N, p.Dp);
            Transpose(a.C.F32, p.Ct, p.D, p.N, p.Dp);
        }
        if (a.D is { } skip) new ReadOnlySpan<float>(skip.F32, p.D).CopyTo(new Span<float>(p.Skip, p.D));
        if (a.DeltaBias is { } bias) new ReadOnlySpan<float>(bias.F32, p.D).CopyTo(new Span<float>(p.Bias, p.D));
        return p;
    }

    /// <summary>dst[n, d] = src[d, n] for a [D, N] source; dst rows are <paramref name="dp"/> long.</summary>
    private static void Transpose(float* src, float* dst, int d, int n, int dp)
    {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++)
                dst[(long)j * dp + i] = src[(long)i * n + j];
    }

    // ---- forward ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScanForwardBlock(in ScanPlan p, int b, int blk, Vector256<float>* h)
    {
        int d0 = blk * ScanLanes, w = Math.Min(ScanLanes, p.D - d0), n = p.N, dp = p.Dp;
        var bias = Vector256.Load(p.Bias + d0);
        var skip = Vector256.Load(p.Skip + d0);
        float* at = p.At + d0;
        for (int j = 0; j < n; j++) h[j] = Vector256<float>.Zero;

        for (int t = 0; t < p.L; t++)
        {
            long row = (long)b * p.L + t, off = row * p.D + d0;
            var raw = LoadLanes(p.Delta + off, w) + bias;
            var dt = p.Softplus ? Simd.Softplus(raw) : raw;
            var u = LoadLanes(p.U + off, w);
            var dtu = dt * u;
            var y = skip * u;
            if (p.Selective)
            {
                float* bt = p.B + row * n, ct = p.C + row * n;
                for (int j = 0; j < n; j++)
                {
                    var a = Vector256.Exp(dt * Vector256.Load(at + (long)j * dp));
                    var hj = Vector256.FusedMultiplyAdd(a, h[j], dtu * Vector256.Create(bt[j]));
                    h[j] = hj;
                    y = Vector256.FusedMultiplyAdd(Vector256.Create(ct[j]), hj, y);
                }
            }
            else
            {
                float* bt = p.Bt + d0, ct = p.Ct + d0;
                for (int j = 0; j < n; j++)
                {
                    long o = (long)j * dp;
                    var a = Vector256.Exp(dt * Vector256.Load(at + o));
                    var hj = Vector256.FusedMultiplyAdd(a, h[j], dtu * Vector256.Load(bt + o));
                    h[j] = hj;
                    y = Vector256.FusedMultiplyAdd(Vector256.Load(ct + o), hj, y);
                }
            }
            if (p.HasZ)
            {
                var z = LoadLanes(p.Z + off, w);
                y = y * z * Simd.Sigmoid(z);
            }
            StoreLanes(y, p.Y + off, w);
        }

        if (p.LastState != null)
            for (int j = 0; j < n; j++)
                for (int l = 0; l < w; l++)
                    p.LastState[((long)b * p.D + d0 + l) * n + j] = h[j].GetElement(l);
    }

    // ---- backward ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScanBackwardBlock(in ScanPlan p, int group, int blk)
    {
        int d0 = blk * ScanLanes, w = Math.Min(ScanLanes, p.D - d0), n = p.N, dp = p.Dp, K = p.Chunk;
        int chunks = (p.L + K - 1) / K;
        int np = (n + ScanLanes - 1) / ScanLanes * ScanLanes;
        var ckpt = (Vector256<float>*)(p.Scratch + group * p.ScratchPerSlot);   // [chunks, N]
        var hs = ckpt + (long)chunks * n;                                      // [K + 1, N]: hs[i + 1] = h at step i of the chunk
        var decay = hs + (long)(K + 1) * n;                                    // [K, N]: a = exp(dt·A)
        var dts = decay + (long)K * n;                                         // [K]
        var dh = dts + K;                                                      // [N]: ∂loss/∂h
        var accA = dh + n;                                                     // [N]: Σ dA
        var accB = accA + n;                                                   // [N]: Σ dB (time-invariant)
        var accC = accB + n;                                                   // [N]: Σ dC (time-invariant)
        var rowB = accC + n;                                                   // [Np]: this step's dB contributions (selective)
        var rowC = rowB + np;                                                  // [Np]: this step's dC contributions (selective)
        float* partB = group == 0 ? p.DB : p.PartialB + (long)(group - 1) * p.Batch * p.L * n;
        float* partC = group == 0 ? p.DC : p.PartialC + (long)(group - 1) * p.Batch * p.L * n;

        var bias = Vector256.Load(p.Bias + d0);
        var skip = Vector256.Load(p.Skip + d0);
        float* at = p.At + d0;
        var accD = Vector256<float>.Zero;
        var accBias = Vector256<float>.Zero;
        for (int j = 0; j < n; j++) accA[j] = accB[j] = accC[j] = Vector256<float>.Zero;
        for (int j = 0; j < np; j++) rowB[j] = rowC[j] = Vector256<float>.Zero;

        for (int b = 0; b < p.Batch; b++)
        {
            // Pass 1: checkpoints ckpt[c] = h before chunk c.
            for (int j = 0; j < n; j++) ckpt[j] = Vector256<float>.Zero;
            for (int c = 0; c + 1 < chunks; c++)
            {
                var h = ckpt + (long)(c + 1) * n;
                Buffer.MemoryCopy(ckpt + (long)c * n, h, n * 32L, n * 32L);
                for (int t = c * K; t < (c + 1) * K; t++)
                {
                    long row = (long)b * p.L + t, off = row * p.D + d0;
                    var raw = LoadLanes(p.Delta + off, w) + bias;
                    var dt = p.Softplus ? Simd.Softplus(raw) : raw;
                    var dtu = dt * LoadLanes(p.U + off, w);
                    for (int j = 0; j < n; j++)
                    {
                        long o = (long)j * dp;
                        var bj = p.Selective ? Vector256.Create(p.B[row * n + j]) : Vector256.Load(p.Bt + d0 + o);
                        h[j] = Vector256.FusedMultiplyAdd(Vector256.Exp(dt * Vector256.Load(at + o)), h[j], dtu * bj);
                    }
                }
            }

            for (int j = 0; j < n; j++) dh[j] = Vector256<float>.Zero;
            for (int c = chunks - 1; c >= 0; c--)
            {
                int t0 = c * K, len = Math.Min(K, p.L - t0);
                Buffer.MemoryCopy(ckpt + (long)c * n, hs, n * 32L, n * 32L);

                // Recompute the chunk: dt, a and h for each of its steps.
                for (int i = 0; i < len; i++)
                {
                    long row = (long)b * p.L + t0 + i, off = row * p.D + d0;
                    var raw = LoadLanes(p.Delta + off, w) + bias;
                    var dt = p.Softplus ? Simd.Softplus(raw) : raw;
                    dts[i] = dt;
                    var dtu = dt * LoadLanes(p.U + off, w);
                    Vector256<float>* hPrev = hs + (long)i * n, hCur = hPrev + n, a = decay + (long)i * n;
                    for (int j = 0; j < n; j++)
                    {
                        long o = (long)j * dp;
                        var bj = p.Selective ? Vector256.Create(p.B[row * n + j]) : Vector256.Load(p.Bt + d0 + o);
                        var aj = Vector256.Exp(dt * Vector256.Load(at + o));
                        a[j] = aj;
                        hCur[j] = Vector256.FusedMultiplyAdd(aj, hPrev[j], dtu * bj);
                    }
                }

                // Reverse sweep over the chunk.
                for (int i = len - 1; i >= 0; i--)
                {
                    int t = t0 + i;
                    long row = (long)b * p.L + t, off = row * p.D + d0;
                    Vector256<float>* hPrev = hs + (long)i * n, hCur = hPrev + n, a = decay + (long)i * n;
                    float* bRow = p.B + row * n, cRow = p.C + row * n;
                    var u = LoadLanes(p.U + off, w);
                    var dt = dts[i];
                    var dout = LoadLanes(p.DY + off, w);
                    var dy = dout;
                    if (p.HasZ)
                    {
                        var z = LoadLanes(p.Z + off, w);
                        var sig = Simd.Sigmoid(z);
                        dy = dout * z * sig;
                        if (p.DZ != null)
                        {
                            var y = skip * u;
                            for (int j = 0; j < n; j++)
                            {
                                var cj = p.Selective ? Vector256.Create(cRow[j]) : Vector256.Load(p.Ct + d0 + (long)j * dp);
                                y = Vector256.FusedMultiplyAdd(cj, hCur[j], y);
                            }
                            var dsilu = sig * (Vector256<float>.One + z * (Vector256<float>.One - sig));
                            StoreLanes(dout * y * dsilu, p.DZ + off, w);
                        }
                    }
                    accD = Vector256.FusedMultiplyAdd(dy, u, accD);
                    var dtu = dt * u;
                    var ddt = Vector256<float>.Zero;
                    var sumB = Vector256<float>.Zero;                   // Σ_n g[n]·B[n]
                    if (p.Selective)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            var g = Vector256.FusedMultiplyAdd(Vector256.Create(cRow[j]), dy, dh[j]);
                            rowC[j] = dy * hCur[j];
                            rowB[j] = g * dtu;
                            sumB = Vector256.FusedMultiplyAdd(g, Vector256.Create(bRow[j]), sumB);
                            var ga = g * a[j];
                            var gah = ga * hPrev[j];
                            accA[j] = Vector256.FusedMultiplyAdd(gah, dt, accA[j]);
                            ddt = Vector256.FusedMultiplyAdd(gah, Vector256.Load(at + (long)j * dp), ddt);
                            dh[j] = ga;
                        }
                        // dB[b, t, :] and dC[b, t, :] get this block's 8 channels summed (race-free: one group per buffer).
                        float* pbRow = partB + row * n, pcRow = partC + row * n;
                        for (int j = 0; j < n; j += ScanLanes)
                        {
                            int m = Math.Min(ScanLanes, n - j);
                            StoreLanes(LoadLanes(pbRow + j, m) + HorizontalSums(rowB + j), pbRow + j, m);
                            StoreLanes(LoadLanes(pcRow + j, m) + HorizontalSums(rowC + j), pcRow + j, m);
                        }
                    }
                    else
                    {
                        for (int j = 0; j < n; j++)
                        {
                            long o = (long)j * dp;
                            var g = Vector256.FusedMultiplyAdd(Vector256.Load(p.Ct + d0 + o), dy, dh[j]);
                            accC[j] = Vector256.FusedMultiplyAdd(dy, hCur[j], accC[j]);
                            accB[j] = Vector256.FusedMultiplyAdd(g, dtu, accB[j]);
                            sumB = Vector256.FusedMultiplyAdd(g, Vector256.Load(p.Bt + d0 + o), sumB);
                            var ga = g * a[j];
                            var gah = ga * hPrev[j];
                            accA[j] = Vector256.FusedMultiplyAdd(gah, dt, accA[j]);
                            ddt = Vector256.FusedMultiplyAdd(gah, Vector256.Load(at + o), ddt);
                            dh[j] = ga;
                        }
                    }
                    ddt = Vector256.FusedMultiplyAdd(sumB, u, ddt);
                    var du = Vector256.FusedMultiplyAdd(sumB, dt, skip * dy);
                    if (p.Softplus)
                    {
                        var raw = LoadLanes(p.Delta + off, w) + bias;
                        ddt = Vector256.ConditionalSelect(Vector256.GreaterThan(raw, Vector256.Create(20f)), ddt, ddt * Simd.Sigmoid(raw));
                    }
                    accBias += ddt;
                    StoreLanes(du, p.DU + off, w);
                    StoreLanes(ddt, p.DDelta + off, w);
                }
            }
        }

        // This block's channels are owned by this worker: write dA [D, N] (and dB, dC when time-invariant), dD, dbias.
        for (int j = 0; j < n; j++)
            for (int l = 0; l < w; l++)
            {
                long o = (long)(d0 + l) * n + j;
                p.DA[o] = accA[j].GetElement(l);
                if (!p.Selective)
                {
                    p.DB[o] = accB[j].GetElement(l);
                    p.DC[o] = accC[j].GetElement(l);
                }
            }
        if (p.DD != null) StoreLanes(accD, p.DD + d0, w);
        if (p.DBias != null) StoreLanes(accBias, p.DBias + d0, w);
    }

    /// <summary>[Σ v[0], Σ v[1], …, Σ v[7]]: the lane sums of 8 vectors in one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HorizontalSums(Vector256<float>* v)
    {
        if (Avx.IsSupported)
        {
            var s0 = Avx.HorizontalAdd(Avx.HorizontalAdd(v[0], v[1]), Avx.HorizontalAdd(v[2], v[3]));
            var s1 = Avx.HorizontalAdd(Avx.HorizontalAdd(v[4], v[5]), Avx.HorizontalAdd(v[6], v[7]));
            // s0 = [Σlo v0..v3 | Σhi v0..v3], s1 likewise for v4..v7: add the low and high 128-bit halves.
            return Avx.Permute2x128(s0, s1, 0x20) + Avx.Permute2x128(s0, s1, 0x31);
        }
        return Vector256.Create(Vector256.Sum(v[0]), Vector256.Sum(v[1]), Vector256.Sum(v[2]), Vector256.Sum(v[3]),
            Vector256.Sum(v[4]), Vector256.Sum(v[5]), Vector256.Sum(v[6]), Vector256.Sum(v[7]));
    }

    /// <summary>Loads <paramref name="w"/> ≤ 8 floats, zeros in the other lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> LoadLanes(float* src, int w) => w == ScanLanes ? Vector256.Load(src) : LoadPartial(src, w);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreLanes(Vector256<float> v, float* dst, int w)
    {
        if (w == ScanLanes) Vector256.Store(v, dst);
        else StorePartial(v, dst, w);
    }

    private static Vector256<float> LoadPartial(float* src, int w)
    {
        if (Avx.IsSupported) return Avx.MaskLoad(src, LaneMask(w));
        var v = Vector256<float>.Zero;
        for (int l = 0; l < w; l++) v = v.WithElement(l, src[l]);
        return v;
    }

    private static void StorePartial(Vector256<float> v, float* dst, int w)
    {
        if (Avx.IsSupported) { Avx.MaskStore(dst, LaneMask(w), v); return; }
        for (int l = 0; l < w; l++) dst[l] = v.GetElement(l);
    }

    private static Vector256<float> LaneMask(int w) =>
        Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(w)).AsSingle();
}
