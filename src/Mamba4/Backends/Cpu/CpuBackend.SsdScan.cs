using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Mamba-2's SSD scan on the CPU, chunked as in the Mamba-2 paper §6 / mamba_ssm's ssd_combined (Ops/SsdScan.cs has the
// math; SsdScanReference.cs is the plain recurrence it is tested against). Per (stream b, head h), in chunks of q steps
// with cum_j = A·Σ_{r≤j} dt_r (inclusive, within the chunk), ec_j = exp(cum_j), w_s = exp(cum_{q−1} − cum_s):
//   M    = (C·Bᵀ) ∘ [exp(cum_j − cum_s)]_{s≤j}              the within-chunk quadratic form (causal decay mask)
//   Y    = M·Xd + ec ∘ (C·S_prevᵀ) + D·x                     Xd = dt ∘ x; the second term: the previous chunks' state
//   Sᵀ   ← exp(cum_{q−1})·Sᵀ + Bᵀ·(w ∘ Xd)                   the state passed on to the next chunk
// Backward per chunk, last to first, with dSᵀ = ∂loss/∂(state leaving the chunk):
//   dXd  = Mᵀ·dY + w ∘ (B·dSᵀ)           dx = D·dY + dt ∘ dXd        ddt += Σ_p dXd ∘ x
//   dM   = dY·Xdᵀ,  dCB = dM ∘ decay      dC = dCB·B + ec ∘ (dY·S_prev)   dB = dCBᵀ·C + w ∘ (Xd·dS)
//   dcum: from dCB∘CB (+ row j, − column s), ⟨C_j, (ec∘dY·S_prev)_j⟩, the w terms and exp(cum_{q−1})·⟨dS, S_prev⟩
//   dSᵀ  ← exp(cum_{q−1})·dSᵀ + Cᵀ·(ec ∘ dY);   da_r = Σ_{j≥r} dcum_j,  ddt_r += A·da_r,  dA += Σ dt_r·da_r
// then through the clamp and softplus as the reference does.
//
// States are kept transposed, Sᵀ [N, P], so that every product is C[i, :] += Σ_k a[i, k]·b[k, :] with b's rows
// contiguous (a read by rows, or by columns for Mᵀ and dCBᵀ): one register-blocked kernel (SsdGemm, 4 rows × 16
// columns of Vector256 accumulators). Scratch rows are padded to 16 floats (Pp, Np, Qp); the kernel's depth is always
// the exact size, so pad columns never reach real ones.
// Work units, forward and backward, are (stream b, group g, split of the group's heads), splits ≤ ⌈threads / (b·G)⌉
// (1 when b·G fills the machine). Forward: chunk by chunk, C·Bᵀ once for the unit's heads (as mamba_ssm computes it
// per group), then each head with its own state; per worker O(chunk) scratch plus one N·P state per head of the unit.
// Backward, head by head: a first pass keeps the state entering each chunk (L/q · N · P floats per worker), the second
// walks the chunks back. Heads of one group add into the same dB, dC, so each split but the first accumulates into
// its own copy ([b, L, G, N] each), summed at the end — race-free and deterministic. dA, dD, dDtBias are summed per
// stream, then over streams.
public sealed unsafe partial class CpuBackend
{
    /// <summary>The CPU kernel's largest chunk: the q×q buffers stay ≤ 4 MiB each (the result does not depend on it beyond rounding).</summary>
    private const int SsdMaxChunk = 1024;

    private struct SsdPlan
    {
        public float* X, Dt, A, B, C, D, DtBias, Y, LastState;
        public float* DY, DX, DDt, DB, DC;
        /// <summary>Backward: dA, dD, dDtBias per stream, [3, batch, H].</summary>
        public float* HeadSums;
        /// <summary>Backward: dB, dC of splits 1.. ([splits − 1][2][batch·L·G·N]).</summary>
        public float* Partials;
        public float* Scratch;
        public long ScratchPerSlot;
        public int Batch, L, H, P, G, N, HeadsPerGroup, Q, Chunks, Pp, Np, Qp;
        /// <summary>Work units are (stream, group, split of the group's heads): enough of them for the workers.</summary>
        public int Splits, HeadsPerSplit;
        public bool Softplus;
        public float DtMin, DtMax;

        public readonly long BcSize => (long)Batch * L * G * N;
    }

    /// <summary>One worker's buffers (rows padded to Pp, Np, Qp floats); the backward-only ones are null in the forward.</summary>
    private struct SsdWork
    {
        public float* Dt, RawGrad, Cum, Ec, W, DCum, DdtDirect;
        public float* Xd, Bt, Cc, Cb, M, Y, States;                               // forward
        public float* XdT, Bc, Ct, DYc, DYs, DXd, T, DCc, DBc, XdDs, Sp, DSt, DS, Checkpoints;

        /// <summary>Lays the buffers out from <paramref name="at"/>; returns the end (from null: the size in floats).</summary>
        public static float* Carve(float* at, in SsdPlan p, bool backward, out SsdWork w)
        {
            w = default;
            float* Take(long floats) { var r = at; at += floats; return r; }
            long qp = p.Qp, qPp = (long)p.Q * p.Pp, qNp = (long)p.Q * p.Np, qQp = (long)p.Q * p.Qp;
            w.Dt = Take(qp); w.Cum = Take(qp); w.Ec = Take(qp); w.W = Take(qp);
            w.Xd = Take(qPp); w.Bt = Take(p.N * qp); w.Cc = Take(qNp); w.Cb = Take(qQp); w.M = Take(qQp);
            if (!backward)
            {
                w.Y = Take(qPp);
                w.States = Take((long)p.HeadsPerSplit * p.N * p.Pp);
                return at;
            }
            w.RawGrad = Take(qp); w.DCum = Take(qp); w.DdtDirect = Take(qp);
            w.XdT = Take(p.P * qp); w.Bc = Take(qNp); w.Ct = Take(p.N * qp);
            w.DYc = Take(qPp); w.DYs = Take(qPp); w.DXd = Take(qPp); w.T = Take(qPp);
            w.DCc = Take(qNp); w.DBc = Take(qNp); w.XdDs = Take(qNp);
            w.Sp = Take((long)p.P * p.Np); w.DS = Take((long)p.P * p.Np); w.DSt = Take((long)p.N * p.Pp);
            w.Checkpoints = Take((long)p.Chunks * p.N * p.Pp);
            return at;
        }
    }

    private static SsdPlan PlanSsd(in SsdScanArgs a)
    {
        var p = new SsdPlan
        {
            X = a.X.F32, Dt = a.Dt.F32, A = a.A.F32, B = a.B.F32, C = a.C.F32,
            D = a.D is { } d ? d.F32 : null, DtBias = a.DtBias is { } db ? db.F32 : null,
            Batch = a.Batch, L = a.Length, H = a.Heads, P = a.HeadDim, G = a.Groups, N = a.StateSize,
            Softplus = a.DtSoftplus, DtMin = a.DtMin, DtMax = a.DtMax,
        };
        p.HeadsPerGroup = p.H / p.G;
        p.Q = Math.Max(1, Math.Min(Math.Min(a.ChunkSize, SsdMaxChunk), p.L));
        p.Chunks = (p.L + p.Q - 1) / p.Q;
        (p.Pp, p.Np, p.Qp) = (RoundUp16(p.P), RoundUp16(p.N), RoundUp16(p.Q));
        long streamsTimesGroups = Math.Max(1L, (long)p.Batch * p.G);
        p.Splits = (int)Math.Clamp((CpuParallel.Threads + streamsTimesGroups - 1) / streamsTimesGroups, 1, Math.Max(1, p.HeadsPerGroup));
        p.HeadsPerSplit = (p.HeadsPerGroup + p.Splits - 1) / p.Splits;
        return p;
    }

    private static long SsdUnits(in SsdPlan p) => (long)p.Batch * p.G * p.Splits;

    /// <summary>Work unit u: stream b, group g, its heads r0 ≤ r &lt; r1 (head g·H/G + r).</summary>
    private static (int B, int G, int R0, int R1) SsdUnit(in SsdPlan p, long u)
    {
        int split = (int)(u % p.Splits), g = (int)(u / p.Splits % p.G), b = (int)(u / p.Splits / p.G);
        return (b, g, p.HeadsPerGroup * split / p.Splits, p.HeadsPerGroup * (split + 1) / p.Splits);
    }

    private static int RoundUp16(int n) => (n + 15) / 16 * 16;

    /// <summary>Allocates <paramref name="slots"/> zeroed workspaces into <c>plan.Scratch</c>.</summary>
    private static Storage AllocateSsdScratch(ref SsdPlan plan, int slots, bool backward)
    {
        plan.ScratchPerSlot = (long)SsdWork.Carve(null, plan, backward, out _) / sizeof(float);
        var storage = CpuAllocator.Shared.Allocate(plan.ScratchPerSlot * slots * sizeof(float));
        plan.Scratch = (float*)storage.Pointer;
        NativeMemory.Clear(plan.Scratch, (nuint)(plan.ScratchPerSlot * slots * sizeof(float)));
        return storage;
    }

    public void SsdScanForward(in SsdScanArgs args)
    {
        var plan = PlanSsd(args);
        plan.Y = args.Y.F32;
        plan.LastState = args.LastState is { } ls ? ls.F32 : null;
        if (args.LastState is { } last) Fill(last, 0f);
        long units = SsdUnits(plan);
        if (units == 0 || plan.H == 0 || plan.L == 0) return;
        int slots = (int)Math.Min(units, CpuParallel.Threads);
        var scratch = AllocateSsdScratch(ref plan, slots, backward: false);
        try
        {
            var p = plan;
            CpuParallel.For(slots, 1, (s0, s1) =>
            {
                for (long s = s0; s < s1; s++)
                {
                    SsdWork.Carve(p.Scratch + s * p.ScratchPerSlot, p, backward: false, out var w);
                    for (long u = units * s / slots; u < units * (s + 1) / slots; u++)
                        SsdForwardHeads(p, w, SsdUnit(p, u));
                }
            });
        }
        finally { scratch.Release(); }
    }

    /// <summary>Heads r0..r1 of group g of stream b, chunk by chunk: C·Bᵀ once per chunk for all of them.</summary>
    private static void SsdForwardHeads(in SsdPlan p, in SsdWork w, (int B, int G, int R0, int R1) unit)
    {
        var (b, g, r0, r1) = unit;
        long stateSize = (long)p.N * p.Pp;
        new Span<float>(w.States, (int)(stateSize * (r1 - r0))).Clear();
        for (int c = 0; c < p.Chunks; c++)
        {
            int t0 = c * p.Q, q = Math.Min(p.Q, p.L - t0);
            SsdLoadGroupChunk(p, w, b, g, t0, q, backward: false);
            SsdGemm(SsdTriangle.LowerColumns, q, q, p.N, w.Cc, p.Np, w.Bt, p.Qp, w.Cb, p.Qp, accumulate: false);
            for (int r = r0; r < r1; r++)
            {
                int h = g * p.HeadsPerGroup + r;
                float* state = w.States + (r - r0) * stateSize;
                float skip = p.D != null ? p.D[h] : 0f;
                SsdLoadHeadChunk(p, w, b, h, t0, q, backward: false);
                // M = CB ∘ decay; Y = ec ∘ (C·S_prevᵀ) + M·Xd.
                for (int j = 0; j < q; j++) SsdDecayRow(w.Cb + j * p.Qp, w.M + j * p.Qp, w.Cum, j, q);
                if (c > 0)
                {
                    SsdGemm(SsdTriangle.None, q, p.P, p.N, w.Cc, p.Np, state, p.Pp, w.Y, p.Pp, accumulate: false);
                    for (int j = 0; j < q; j++) Scale(w.Y + j * p.Pp, w.Ec[j], p.P);
                }
                SsdGemm(SsdTriangle.LowerDepth, q, p.P, q, w.M, p.Qp, w.Xd, p.Pp, w.Y, p.Pp, accumulate: c > 0);
                for (int j = 0; j < q; j++)
                {
                    long row = (((long)b * p.L + t0 + j) * p.H + h) * p.P;
                    for (int i = 0; i < p.P; i++) p.Y[row + i] = w.Y[j * p.Pp + i] + skip * p.X[row + i];
                }
                if (c + 1 < p.Chunks || p.LastState != null) SsdAdvanceState(p, w, q, state);
            }
        }
        if (p.LastState == null) return;
        for (int r = r0; r < r1; r++)
            SsdTranspose(w.States + (r - r0) * stateSize, p.N, p.P, p.Pp, p.LastState + ((long)b * p.H + g * p.HeadsPerGroup + r) * p.P * p.N, p.N);
    }

    /// <summary>Sᵀ ← exp(cum_{q−1})·Sᵀ + Bᵀ·(w ∘ Xd) (scales the head's Xd in place).</summary>
    private static void SsdAdvanceState(in SsdPlan p, in SsdWork w, int q, float* stateT)
    {
        Scale(stateT, MathF.Exp(w.Cum[q - 1]), p.N * p.Pp);
        for (int s = 0; s < q; s++) Scale(w.Xd + s * p.Pp, w.W[s], p.P);
        SsdGemm(SsdTriangle.None, p.N, p.P, q, w.Bt, p.Qp, w.Xd, p.Pp, stateT, p.Pp, accumulate: true);
    }

    /// <summary>dt (after bias, softplus, clamp) and, for the backward, its derivative in dt + dtBias (0 where clamped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float SsdDt(float raw, bool softplus, float dtMin, float dtMax, out float rawGrad)
    {
        float v = softplus ? Simd.Softplus(raw) : raw;
        rawGrad = v < dtMin || v > dtMax ? 0f : softplus ? Simd.Sigmoid(raw) : 1f;
        return Math.Clamp(v, dtMin, dtMax);
    }

    /// <summary>One chunk of group g's B and C: Bᵀ [N, Qp], C [q, Np]; for the backward also B [q, Np] and Cᵀ [N, Qp].</summary>
    private static void SsdLoadGroupChunk(in SsdPlan p, in SsdWork w, int b, int g, int t0, int q, bool backward)
    {
        for (int j = 0; j < q; j++)
        {
            long row = (long)b * p.L + t0 + j;
            float* bRow = p.B + (row * p.G + g) * p.N, cRow = p.C + (row * p.G + g) * p.N;
            new ReadOnlySpan<float>(cRow, p.N).CopyTo(new Span<float>(w.Cc + j * p.Np, p.N));
            for (int n = 0; n < p.N; n++) w.Bt[n * p.Qp + j] = bRow[n];
            if (!backward) continue;
            new ReadOnlySpan<float>(bRow, p.N).CopyTo(new Span<float>(w.Bc + j * p.Np, p.N));
            for (int n = 0; n < p.N; n++) w.Ct[n * p.Qp + j] = cRow[n];
        }
    }

    /// <summary>One chunk of head h: dt, cum, ec, w and Xd = dt ∘ x [q, Pp]; for the backward also the raw-dt gradient factor and Xdᵀ [P, Qp].</summary>
    private static void SsdLoadHeadChunk(in SsdPlan p, in SsdWork w, int b, int h, int t0, int q, bool backward)
    {
        float a = p.A[h], bias = p.DtBias != null ? p.DtBias[h] : 0f, cum = 0f;
        for (int j = 0; j < q; j++)
        {
            long row = (long)b * p.L + t0 + j;
            float dt = SsdDt(p.Dt[row * p.H + h] + bias, p.Softplus, p.DtMin, p.DtMax, out float rawGrad);
            w.Dt[j] = dt;
            if (backward) w.RawGrad[j] = rawGrad;
            cum += dt * a;
            w.Cum[j] = cum;
            float* x = p.X + (row * p.H + h) * p.P, xd = w.Xd + j * p.Pp;
            for (int i = 0; i < p.P; i++) xd[i] = dt * x[i];
            if (backward)
                for (int i = 0; i < p.P; i++) w.XdT[i * p.Qp + j] = xd[i];
        }
        for (int j = 0; j < q; j++)
        {
            w.Ec[j] = MathF.Exp(w.Cum[j]);
            w.W[j] = MathF.Exp(cum - w.Cum[j]);
        }
    }

    public void SsdScanBackward(in SsdScanArgs args, in SsdScanGrads grads)
    {
        var plan = PlanSsd(args);
        plan.DY = grads.DY.F32; plan.DX = grads.DX.F32; plan.DDt = grads.DDt.F32; plan.DB = grads.DB.F32; plan.DC = grads.DC.F32;
        Fill(grads.DB, 0f);   // the heads of a group add into dB, dC; everything else is written once
        Fill(grads.DC, 0f);
        long units = SsdUnits(plan);
        if (units == 0 || plan.H == 0 || plan.L == 0)
        {
            foreach (var t in new[] { grads.DX, grads.DDt, grads.DA, grads.DD, grads.DDtBias })
                if (t is not null) Fill(t, 0f);
            return;
        }
        int slots = (int)Math.Min(units, CpuParallel.Threads);
        long headSums = 3L * plan.Batch * plan.H, partials = 2 * (plan.Splits - 1) * plan.BcSize;
        var sums = CpuAllocator.Shared.Allocate((headSums + partials) * sizeof(float));
        var scratch = AllocateSsdScratch(ref plan, slots, backward: true);
        try
        {
            plan.HeadSums = (float*)sums.Pointer;
            plan.Partials = plan.HeadSums + headSums;
            NativeMemory.Clear(plan.HeadSums, (nuint)((headSums + partials) * sizeof(float)));
            var p = plan;
            CpuParallel.For(slots, 1, (s0, s1) =>
            {
                for (long s = s0; s < s1; s++)
                {
                    SsdWork.Carve(p.Scratch + s * p.ScratchPerSlot, p, backward: true, out var w);
                    for (long u = units * s / slots; u < units * (s + 1) / slots; u++)
                    {
                        var (b, g, r0, r1) = SsdUnit(p, u);
                        long split = u % p.Splits;
                        float* dB = split == 0 ? p.DB : p.Partials + 2 * (split - 1) * p.BcSize;
                        float* dC = split == 0 ? p.DC : dB + p.BcSize;
                        for (int r = r0; r < r1; r++) SsdBackwardHead(p, w, b, g * p.HeadsPerGroup + r, dB, dC);
                    }
                }
            });
            // The splits' dB, dC into the outputs; the per-stream sums over the streams.
            for (int split = 1; split < p.Splits; split++)
            {
                float* from = p.Partials + 2 * (split - 1) * p.BcSize;
                CpuParallel.For(p.BcSize, 1 << 14, (i0, i1) =>
                {
                    for (long i = i0; i < i1; i++) { p.DB[i] += from[i]; p.DC[i] += from[p.BcSize + i]; }
                });
            }
            var heads = new float[3][];
            for (int k = 0; k < 3; k++)
            {
                heads[k] = new float[p.H];
                for (int b = 0; b < p.Batch; b++)
                    for (int h = 0; h < p.H; h++) heads[k][h] += p.HeadSums[((long)k * p.Batch + b) * p.H + h];
            }
            heads[0].CopyTo(grads.DA.AsSpan<float>());
            if (grads.DD is { } gd) heads[1].CopyTo(gd.AsSpan<float>());
            if (grads.DDtBias is { } gb) heads[2].CopyTo(gb.AsSpan<float>());
        }
        finally
        {
            scratch.Release();
            sums.Release();
        }
    }

    /// <summary>The backward of one (stream, head): the states entering each chunk, then the chunks last to first.</summary>
    private static void SsdBackwardHead(in SsdPlan p, in SsdWork w, int b, int h, float* dB, float* dC)
    {
        int g = h / p.HeadsPerGroup;
        long stateSize = (long)p.N * p.Pp;
        new Span<float>(w.Checkpoints, (int)stateSize).Clear();
        for (int c = 0; c + 1 < p.Chunks; c++)
        {
            int t0 = c * p.Q, q = Math.Min(p.Q, p.L - t0);
            SsdLoadGroupChunk(p, w, b, g, t0, q, backward: false);
            SsdLoadHeadChunk(p, w, b, h, t0, q, backward: false);
            float* next = w.Checkpoints + (c + 1) * stateSize;
            new Span<float>(w.Checkpoints + c * stateSize, (int)stateSize).CopyTo(new Span<float>(next, (int)stateSize));
            SsdAdvanceState(p, w, q, next);
        }

        float a = p.A[h], skip = p.D != null ? p.D[h] : 0f;
        double dA = 0, dD = 0, dBias = 0;
        for (int c = p.Chunks - 1; c >= 0; c--)
        {
            int t0 = c * p.Q, q = Math.Min(p.Q, p.L - t0);
            bool hasState = c > 0, hasStateGrad = c + 1 < p.Chunks;
            float* statePrevT = w.Checkpoints + c * stateSize;
            SsdLoadGroupChunk(p, w, b, g, t0, q, backward: true);
            SsdLoadHeadChunk(p, w, b, h, t0, q, backward: true);
            new Span<float>(w.DCum, p.Qp).Clear();
            if (hasState) SsdTranspose(statePrevT, p.N, p.P, p.Pp, w.Sp, p.Np);
            if (hasStateGrad) SsdTranspose(w.DSt, p.N, p.P, p.Pp, w.DS, p.Np);
            for (int j = 0; j < q; j++)
            {
                float* dy = p.DY + (((long)b * p.L + t0 + j) * p.H + h) * p.P;
                for (int i = 0; i < p.P; i++) { w.DYc[j * p.Pp + i] = dy[i]; w.DYs[j * p.Pp + i] = w.Ec[j] * dy[i]; }
            }

            // M = CB ∘ decay (CB kept); dXd = Mᵀ·dY (+ w ∘ B·dSᵀ).
            SsdGemm(SsdTriangle.LowerColumns, q, q, p.N, w.Cc, p.Np, w.Bt, p.Qp, w.Cb, p.Qp, accumulate: false);
            for (int j = 0; j < q; j++) SsdDecayRow(w.Cb + j * p.Qp, w.M + j * p.Qp, w.Cum, j, q);
            SsdGemm(SsdTriangle.UpperDepth, q, p.P, q, w.M, p.Qp, w.DYc, p.Pp, w.DXd, p.Pp, accumulate: false, aTransposed: true);
            if (hasStateGrad)
            {
                SsdGemm(SsdTriangle.None, q, p.P, p.N, w.Bc, p.Np, w.DSt, p.Pp, w.T, p.Pp, accumulate: false);
                for (int s = 0; s < q; s++)
                    for (int i = 0; i < p.P; i++) w.DXd[s * p.Pp + i] += w.W[s] * w.T[s * p.Pp + i];
            }
            for (int s = 0; s < q; s++)
            {
                long row = (((long)b * p.L + t0 + s) * p.H + h) * p.P;
                float* x = p.X + row, dy = w.DYc + s * p.Pp, dxd = w.DXd + s * p.Pp;
                float direct = 0;
                for (int i = 0; i < p.P; i++)
                {
                    p.DX[row + i] = skip * dy[i] + w.Dt[s] * dxd[i];
                    direct += dxd[i] * x[i];
                    dD += dy[i] * x[i];
                }
                w.DdtDirect[s] = direct;
            }

            // dM = dY·Xdᵀ → dCB (in place of dM) and the decay's dcum; dC = ec ∘ (dY·S_prev) + dCB·B; dB = dCBᵀ·C + w ∘ (Xd·dS).
            SsdGemm(SsdTriangle.LowerColumns, q, q, p.P, w.DYc, p.Pp, w.XdT, p.Qp, w.M, p.Qp, accumulate: false);
            for (int j = 0; j < q; j++) SsdDecayRowBackward(w.M + j * p.Qp, w.Cb + j * p.Qp, w.Cum, w.DCum, j, q);
            if (hasState)
            {
                SsdGemm(SsdTriangle.None, q, p.N, p.P, w.DYs, p.Pp, w.Sp, p.Np, w.DCc, p.Np, accumulate: false);
                for (int j = 0; j < q; j++) w.DCum[j] += Dot(w.Cc + j * p.Np, w.DCc + j * p.Np, p.N);
            }
            SsdGemm(SsdTriangle.LowerDepth, q, p.N, q, w.M, p.Qp, w.Bc, p.Np, w.DCc, p.Np, accumulate: hasState);
            SsdGemm(SsdTriangle.UpperDepth, q, p.N, q, w.M, p.Qp, w.Cc, p.Np, w.DBc, p.Np, accumulate: false, aTransposed: true);
            if (hasStateGrad)
            {
                SsdGemm(SsdTriangle.None, q, p.N, p.P, w.Xd, p.Pp, w.DS, p.Np, w.XdDs, p.Np, accumulate: false);
                for (int s = 0; s < q; s++)
                {
                    float* xdds = w.XdDs + s * p.Np, dbRow = w.DBc + s * p.Np;
                    float dwTimesW = Dot(w.Bc + s * p.Np, xdds, p.N) * w.W[s];
                    w.DCum[q - 1] += dwTimesW;
                    w.DCum[s] -= dwTimesW;
                    for (int n = 0; n < p.N; n++) dbRow[n] += w.W[s] * xdds[n];
                }
            }
            for (int j = 0; j < q; j++)
            {
                long row = ((long)b * p.L + t0 + j) * p.G + g;
                float* dbOut = dB + row * p.N, dcOut = dC + row * p.N, db = w.DBc + j * p.Np, dc = w.DCc + j * p.Np;
                for (int n = 0; n < p.N; n++) { dbOut[n] += db[n]; dcOut[n] += dc[n]; }
            }

            // The state's gradient for the chunk before: dSᵀ ← exp(cum_{q−1})·dSᵀ + Cᵀ·(ec ∘ dY).
            if (hasState)
            {
                float decay = MathF.Exp(w.Cum[q - 1]);
                if (hasStateGrad)
                {
                    float dot = 0;
                    for (int n = 0; n < p.N; n++) dot += Dot(w.DSt + n * p.Pp, statePrevT + n * p.Pp, p.P);
                    w.DCum[q - 1] += decay * dot;
                    Scale(w.DSt, decay, p.N * p.Pp);
                }
                SsdGemm(SsdTriangle.None, p.N, p.P, q, w.Ct, p.Qp, w.DYs, p.Pp, w.DSt, p.Pp, accumulate: hasStateGrad);
            }

            // da_r = Σ_{j≥r} dcum_j; ddt_r = direct + A·da_r; then through clamp and softplus.
            float da = 0;
            for (int r = q - 1; r >= 0; r--)
            {
                da += w.DCum[r];
                dA += w.Dt[r] * da;
                float ddt = (w.DdtDirect[r] + a * da) * w.RawGrad[r];
                p.DDt[((long)b * p.L + t0 + r) * p.H + h] = ddt;
                dBias += ddt;
            }
        }
        p.HeadSums[(long)b * p.H + h] = (float)dA;
        p.HeadSums[((long)p.Batch + b) * p.H + h] = (float)dD;
        p.HeadSums[(2L * p.Batch + b) * p.H + h] = (float)dBias;
    }

    /// <summary>m[s] = cb[s]·exp(cum_j − cum_s) for s ≤ j, 0 for j &lt; s &lt; q: row j of CB under the causal decay mask.</summary>
    private static void SsdDecayRow(float* cb, float* m, float* cum, int j, int q)
    {
        var cj = Vector256.Create(cum[j]);
        int s = 0;
        for (; s <= j; s += 8)
        {
            var keep = SsdLanesUpTo(s, j);
            var e = Simd.Exp(cj - Vector256.Load(cum + s));
            Vector256.Store(Vector256.ConditionalSelect(keep, e * Vector256.Load(cb + s), Vector256<float>.Zero), m + s);
        }
        if (s < q) new Span<float>(m + s, q - s).Clear();
    }

    /// <summary>
    /// Row j of dM becomes dCB = dM ∘ exp(cum_j − cum_s) (0 beyond j). Each term dCB∘CB is ∂loss/∂(cum_j − cum_s):
    /// added to dcum_j, subtracted from dcum_s.
    /// </summary>
    private static void SsdDecayRowBackward(float* dm, float* cb, float* cum, float* dcum, int j, int q)
    {
        var cj = Vector256.Create(cum[j]);
        var rowSum = Vector256<float>.Zero;
        int s = 0;
        for (; s <= j; s += 8)
        {
            var keep = SsdLanesUpTo(s, j);
            var dcb = Vector256.ConditionalSelect(keep, Simd.Exp(cj - Vector256.Load(cum + s)) * Vector256.Load(dm + s), Vector256<float>.Zero);
            var term = Vector256.ConditionalSelect(keep, dcb * Vector256.Load(cb + s), Vector256<float>.Zero);
            Vector256.Store(dcb, dm + s);
            Vector256.Store(Vector256.Load(dcum + s) - term, dcum + s);
            rowSum += term;
        }
        if (s < q) new Span<float>(dm + s, q - s).Clear();
        dcum[j] += Vector256.Sum(rowSum);
    }

    /// <summary>Lanes s..s+7 that are ≤ j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> SsdLanesUpTo(int s, int j) =>
        Vector256.LessThanOrEqual(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) + Vector256.Create(s), Vector256.Create(j)).AsSingle();

    private enum SsdTriangle
    {
        None,
        /// <summary>Row i needs columns ≤ i only (the rest of its row is left as it was).</summary>
        LowerColumns,
        /// <summary>Row i sums k ≤ i only (a is lower triangular).</summary>
        LowerDepth,
        /// <summary>Row i sums k ≥ i only (a is upper triangular).</summary>
        UpperDepth,
    }

    /// <summary>
    /// c[i, 0..cols) (+)= Σ_k a(i, k)·b[k·ldb + 0..cols), for i &lt; rows, with a(i, k) = a[i·lda + k] (a[k·lda + i] when
    /// <paramref name="aTransposed"/>): 4 rows × 16 columns per block in
    /// Vector256 accumulators. b's and c's rows must hold cols rounded up to 16 (the pad columns get what the pad
    /// columns of b give). <paramref name="triangle"/> limits columns or depth per block of 4 rows (a superset of the
    /// triangle: the entries outside it must be 0 in a, or are not read from c).
    /// </summary>
    private static void SsdGemm(SsdTriangle triangle, int rows, int cols, int depth, float* a, int lda, float* b, int ldb, float* c, int ldc,
        bool accumulate, bool aTransposed = false)
    {
        long rowStride = aTransposed ? 1 : lda, depthStride = aTransposed ? lda : 1;
        for (int i0 = 0; i0 < rows; i0 += 4)
        {
            int valid = Math.Min(4, rows - i0);
            int colEnd = triangle == SsdTriangle.LowerColumns ? Math.Min(cols, i0 + 4) : cols;
            int k0 = triangle == SsdTriangle.UpperDepth ? Math.Min(i0, depth) : 0;
            int k1 = triangle == SsdTriangle.LowerDepth ? Math.Min(depth, i0 + 4) : depth;
            // Rows past the end repeat row i0 and are not stored.
            long o1 = valid > 1 ? rowStride : 0, o2 = valid > 2 ? 2 * rowStride : 0, o3 = valid > 3 ? 3 * rowStride : 0;
            float* c0 = c + (long)i0 * ldc, c1 = valid > 1 ? c0 + ldc : c0, c2 = valid > 2 ? c0 + 2L * ldc : c0, c3 = valid > 3 ? c0 + 3L * ldc : c0;
            for (int j0 = 0; j0 < colEnd; j0 += 16)
            {
                Vector256<float> r00, r01, r10, r11, r20, r21, r30, r31;
                if (accumulate)
                {
                    (r00, r01) = (Vector256.Load(c0 + j0), Vector256.Load(c0 + j0 + 8));
                    (r10, r11) = (Vector256.Load(c1 + j0), Vector256.Load(c1 + j0 + 8));
                    (r20, r21) = (Vector256.Load(c2 + j0), Vector256.Load(c2 + j0 + 8));
                    (r30, r31) = (Vector256.Load(c3 + j0), Vector256.Load(c3 + j0 + 8));
                }
                else r00 = r01 = r10 = r11 = r20 = r21 = r30 = r31 = Vector256<float>.Zero;
                float* bk = b + (long)k0 * ldb + j0, ak = a + i0 * rowStride + k0 * depthStride;
                for (int k = k0; k < k1; k++, bk += ldb, ak += depthStride)
                {
                    var b0 = Vector256.Load(bk);
                    var b1 = Vector256.Load(bk + 8);
                    var v = Vector256.Create(ak[0]);
                    r00 = Vector256.FusedMultiplyAdd(v, b0, r00); r01 = Vector256.FusedMultiplyAdd(v, b1, r01);
                    v = Vector256.Create(ak[o1]);
                    r10 = Vector256.FusedMultiplyAdd(v, b0, r10); r11 = Vector256.FusedMultiplyAdd(v, b1, r11);
                    v = Vector256.Create(ak[o2]);
                    r20 = Vector256.FusedMultiplyAdd(v, b0, r20); r21 = Vector256.FusedMultiplyAdd(v, b1, r21);
                    v = Vector256.Create(ak[o3]);
                    r30 = Vector256.FusedMultiplyAdd(v, b0, r30); r31 = Vector256.FusedMultiplyAdd(v, b1, r31);
                }
                // Stored last row first, so that repeated rows (valid < 4) end with row i0's own values.
                Vector256.Store(r30, c3 + j0); Vector256.Store(r31, c3 + j0 + 8);
                Vector256.Store(r20, c2 + j0); Vector256.Store(r21, c2 + j0 + 8);
                Vector256.Store(r10, c1 + j0); Vector256.Store(r11, c1 + j0 + 8);
                Vector256.Store(r00, c0 + j0); Vector256.Store(r01, c0 + j0 + 8);
            }
        }
    }

    /// <summary>dst[j·ldd + i] = src[i·lds + j] for i &lt; rows, j &lt; cols.</summary>
    private static void SsdTranspose(float* src, int rows, int cols, int lds, float* dst, int ldd)
    {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) dst[(long)j * ldd + i] = src[(long)i * lds + j];
    }

    private static void Scale(float* x, float factor, long n)
    {
        long i = 0;
        var f = Vector256.Create(factor);
        for (; i <= n - 8; i += 8) Vector256.Store(Vector256.Load(x + i) * f, x + i);
        for (; i < n; i++) x[i] *= factor;
    }

    // ---- recurrent step (decoding): S ← exp(dt·A)·S + dt·x ⊗ B; y = S·C + D·x, vectorised over n ----
    public void SsdScanStep(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias, bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y)
    {
        int batch = x.Shape[0], heads = x.Shape[1], headDim = x.Shape[2], groups = b.Shape[1], n = b.Shape[2];
        float* px = x.F32, pdt = dt.F32, pa = a.F32, pB = b.F32, pC = c.F32, ps = ssmState.F32, py = y.F32;
        float* pD = d is null ? null : d.F32, pbias = dtBias is null ? null : dtBias.F32;
        int headsPerGroup = heads / groups;
        CpuParallel.For((long)batch * heads, 4, (i0, i1) =>
        {
            for (long i = i0; i < i1; i++)
            {
                int bi = (int)(i / heads), h = (int)(i % heads), g = h / headsPerGroup;
                float step = SsdDt(pdt[i] + (pbias != null ? pbias[h] : 0f), dtSoftplus, dtMin, dtMax, out _);
                float decay = MathF.Exp(step * pa[h]), skip = pD != null ? pD[h] : 0f;
                float* bRow = pB + ((long)bi * groups + g) * n, cRow = pC + ((long)bi * groups + g) * n;
                for (int p = 0; p < headDim; p++)
                {
                    long xi = i * headDim + p;
                    float* s = ps + xi * n;
                    var vDecay = Vector256.Create(decay);
                    var vCoef = Vector256.Create(step * px[xi]);
                    var acc = Vector256<float>.Zero;
                    int k = 0;
                    for (; k <= n - 8; k += 8)
                    {
                        var sv = Vector256.FusedMultiplyAdd(vCoef, Vector256.Load(bRow + k), vDecay * Vector256.Load(s + k));
                        Vector256.Store(sv, s + k);
                        acc = Vector256.FusedMultiplyAdd(sv, Vector256.Load(cRow + k), acc);
                    }
                    float yv = Vector256.Sum(acc);
                    for (; k < n; k++)
                    {
                        s[k] = decay * s[k] + step * px[xi] * bRow[k];
                        yv += s[k] * cRow[k];
                    }
                    py[xi] = yv + skip * px[xi];
                }
            }
        });
    }
}
