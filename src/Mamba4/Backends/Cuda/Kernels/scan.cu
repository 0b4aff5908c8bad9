// The fused selective scan (Ops/SelectiveScan.cs), channels last: u, delta, z, y [B, L, D]; A [D, N];
// B, C [B, L, N] (selective) or [D, N] (time-invariant); D, bias [D].
//   dt_t = softplus(delta_t + bias),  a_t[n] = exp(dt_t·A[n]),  h_t = a_t ⊙ h_{t−1} + dt_t·B_t·u_t
//   y_t = ⟨C_t, h_t⟩ + D·u_t,  out_t = y_t·silu(z_t)
//
// Threads: a thread owns NS states (n = sub·NS + i) of one channel of one batch row; TPC = ⌈N/NS⌉ threads
// share a channel (adjacent lanes; ⟨C, h⟩ is summed with shuffles). The state lives in registers; exp is
// exp2 with A pre-scaled by log2 e. B_t, C_t rows are staged in shared memory (one row serves every channel).
// Nothing of size [B, L, D, N] is written.
//
// Chunks over L (for parallelism and for the backward's memory): chunk c covers steps [c·T, (c+1)·T). The
// recurrence is linear, so with S_c = Σ_{t∈c} dt_t and h̃_c the chunk's end state started from zero,
//   H_{c+1} = exp(A·S_c) ⊙ H_c + h̃_c     (H_c: the state before chunk c, H_0 = 0)
// forward: phase 0 (local) writes h̃_c and S_c, scan_carry_forward turns them into H_c, phase 1 runs each
// chunk from H_c writing y (and the last state).
//
// Backward (g_t = ∂loss/∂h_t; dy_t = dout_t·silu(z_t)):
//   g_t = C_t·dy_t + a_{t+1} ⊙ g_{t+1}
//   dC_t += dy_t·h_t,  dB_t += g_t·dt_t·u_t,  dA += g_t ⊙ a_t ⊙ h_{t−1}·dt_t,  du_t = D·dy_t + dt_t⟨g_t, B_t⟩
//   ddt_t = ⟨g_t, a_t ⊙ h_{t−1} ⊙ A⟩ + u_t⟨g_t, B_t⟩,  ddelta_t = ddt_t·σ(delta_t + bias),  dD = Σ dy·u,  dbias = Σ ddelta
//   dz_t = dout_t·y_t·silu'(z_t)
// Chunks in reverse: õ_c = a_{t0}·g_{t0} of chunk c with nothing coming from later chunks (scan_backward_local);
// the gradient entering chunk c from the later ones is E_c = õ_{c+1} + exp(A·S_{c+1}) ⊙ E_{c+1} (scan_carry_backward).
// scan_backward then runs each chunk from H_c and E_c: pass 1 keeps h every SUB steps in shared memory, pass 2
// visits those sub-blocks last to first, recomputes SUB steps of h and a into registers and sweeps them in reverse.
// dB_t, dC_t (selective) are summed over the warp's channels with shuffles, over the block in shared memory,
// and over blocks with atomics; dA, dD, dbias (and time-invariant dB, dC) with one atomic per thread.
#define TILE 32
#define SUB 8

struct ScanParams
{
    const float *u, *delta, *A, *B, *C, *D, *z, *bias;
    float *y, *last;
    float *carryH;    // [B, chunks, D, N]: h̃_c, then H_c
    float *sumDt;     // [B, chunks, D]: S_c
    float *carryG;    // [B, chunks, D, N]: õ_c, then E_c
    const float *dout;
    float *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;
    int batch, L, Dch, N, chunkLen, chunks, tpc, selective, softplus;
};

// Sum over the TPC adjacent lanes that share a channel (every lane of the warp must call it).
__device__ __forceinline__ float channel_sum(float v, int tpc)
{
    for (int o = tpc >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float scan_dt(float raw, int softplus) { return softplus ? softplus_f(raw) : raw; }

// Where this thread sits: channel d (clamped to a real one when the block overhangs D), its first state, chunk, batch row.
struct ScanLane
{
    int sub, d, dc, n0, valid, c, b, t0, t1;
    bool active;
};

__device__ __forceinline__ ScanLane scan_lane(const ScanParams& p, int chunk)
{
    ScanLane s;
    int cpb = blockDim.x / p.tpc;
    s.sub = threadIdx.x % p.tpc;
    s.d = blockIdx.x * cpb + threadIdx.x / p.tpc;
    s.active = s.d < p.Dch;
    s.dc = s.active ? s.d : p.Dch - 1;
    s.c = chunk;
    s.b = blockIdx.z;
    s.t0 = chunk * p.chunkLen;
    s.t1 = min(p.L, s.t0 + p.chunkLen);
    return s;
}

// Copies rows [t0, t0 + count) of the selective B (and C) into shared memory ([count, N], zero past t1).
__device__ __forceinline__ void stage_rows(const ScanParams& p, int b, int t0, int count, int t1, float* sB, float* sC)
{
    const float* gB = p.B + ((i64)b * p.L + t0) * p.N;
    const float* gC = p.C + ((i64)b * p.L + t0) * p.N;
    int valid = max(0, min(count, t1 - t0)) * p.N;
    for (int k = threadIdx.x; k < count * p.N; k += blockDim.x)
    {
        sB[k] = k < valid ? gB[k] : 0.f;
        if (sC) sC[k] = k < valid ? gC[k] : 0.f;
    }
}

// ---- forward ----

template <int NS>
__device__ void scan_forward_impl(const ScanParams& p, int phase, int chunk)
{
    extern __shared__ float smem[];
    ScanLane s = scan_lane(p, chunk);
    const int N = p.N, n0 = s.sub * NS;
    float a2[NS], h[NS], bv[NS], cv[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        a2[i] = ok ? p.A[(i64)s.dc * N + n0 + i] * LOG2E : 0.f;
        bv[i] = ok && !p.selective ? p.B[(i64)s.dc * N + n0 + i] : 0.f;
        cv[i] = ok && !p.selective ? p.C[(i64)s.dc * N + n0 + i] : 0.f;
        h[i] = ok && phase == 1 && s.c > 0 ? p.carryH[(((i64)s.b * p.chunks + s.c) * p.Dch + s.dc) * N + n0 + i] : 0.f;
    }
    const float skip = p.D ? p.D[s.dc] : 0.f, bias = p.bias ? p.bias[s.dc] : 0.f;
    float* sB = smem;
    float* sC = smem + TILE * N;
    float dtSum = 0.f;
    for (int tt = s.t0; tt < s.t1; tt += TILE)
    {
        if (p.selective)
        {
            __syncthreads();
            stage_rows(p, s.b, tt, TILE, s.t1, sB, phase == 1 ? sC : 0);
            __syncthreads();
        }
        int steps = min(TILE, s.t1 - tt);
        for (int k = 0; k < steps; k++)
        {
            i64 off = ((i64)s.b * p.L + tt + k) * p.Dch + s.dc;
            float dt = scan_dt(p.delta[off] + bias, p.softplus), uu = p.u[off], dtu = dt * uu;
            dtSum += dt;
            float yv = 0.f;
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                bool ok = n0 + i < N;
                float bn = p.selective ? (ok ? sB[k * N + n0 + i] : 0.f) : bv[i];
                h[i] = fmaf(exp2f(dt * a2[i]), h[i], dtu * bn);
                if (phase == 1)
                {
                    float cn = p.selective ? (ok ? sC[k * N + n0 + i] : 0.f) : cv[i];
                    yv = fmaf(cn, h[i], yv);
                }
            }
            if (phase == 1)
            {
                yv = channel_sum(yv, p.tpc);
                if (s.sub == 0 && s.active)
                {
                    yv = fmaf(skip, uu, yv);
                    if (p.z) yv *= silu_f(p.z[off]);
                    p.y[off] = yv;
                }
            }
        }
    }
    if (!s.active) return;
    if (phase == 0)
    {
        i64 base = (((i64)s.b * p.chunks + s.c) * p.Dch + s.d) * N;
        #pragma unroll
        for (int i = 0; i < NS; i++) if (n0 + i < N) p.carryH[base + n0 + i] = h[i];
        if (s.sub == 0) p.sumDt[((i64)s.b * p.chunks + s.c) * p.Dch + s.d] = dtSum;
    }
    else if (p.last && s.c == p.chunks - 1)
    {
        #pragma unroll
        for (int i = 0; i < NS; i++) if (n0 + i < N) p.last[((i64)s.b * p.Dch + s.d) * N + n0 + i] = h[i];
    }
}

// phase 0: local end states of chunks 0 … chunks−2 (grid.y = chunks − 1); phase 1: outputs (grid.y = chunks)
#define SCAN_FORWARD(NS) \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS(ScanParams p, int phase) { scan_forward_impl<NS>(p, phase, blockIdx.y); }
SCAN_FORWARD(1)
SCAN_FORWARD(2)
SCAN_FORWARD(4)
SCAN_FORWARD(8)
SCAN_FORWARD(16)

// H_c from h̃_c and S_c, one thread per (b, d, n); in place in carryH.
extern "C" __global__ void scan_carry_forward(ScanParams p)
{
    i64 n = (i64)p.batch * p.Dch * p.N;
    GRID_STRIDE(i, n)
    {
        int s = (int)(i % p.N);
        i64 bd = i / p.N;
        int d = (int)(bd % p.Dch);
        i64 b = bd / p.Dch;
        float a2 = p.A[(i64)d * p.N + s] * LOG2E, H = 0.f;
        for (int c = 0; c < p.chunks - 1; c++)
        {
            i64 at = ((b * p.chunks + c) * p.Dch + d) * p.N + s;
            float local = p.carryH[at];
            p.carryH[at] = H;
            H = fmaf(exp2f(a2 * p.sumDt[(b * p.chunks + c) * p.Dch + d]), H, local);
        }
        p.carryH[((b * p.chunks + p.chunks - 1) * p.Dch + d) * p.N + s] = H;
    }
}

// ---- backward ----

// õ_c for chunks 1 … chunks−1 (grid.y = chunks − 1, chunk = blockIdx.y + 1): the gradient a chunk sends to the
// state before it when nothing comes from later chunks.
template <int NS>
__device__ void scan_backward_local_impl(const ScanParams& p)
{
    extern __shared__ float smem[];
    ScanLane s = scan_lane(p, blockIdx.y + 1);
    const int N = p.N, n0 = s.sub * NS;
    float a2[NS], g[NS], cv[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        a2[i] = ok ? p.A[(i64)s.dc * N + n0 + i] * LOG2E : 0.f;
        cv[i] = ok && !p.selective ? p.C[(i64)s.dc * N + n0 + i] : 0.f;
        g[i] = 0.f;
    }
    const float bias = p.bias ? p.bias[s.dc] : 0.f;
    float* sC = smem;
    int tiles = (s.t1 - s.t0 + TILE - 1) / TILE;
    for (int tile = tiles - 1; tile >= 0; tile--)
    {
        int tt = s.t0 + tile * TILE;
        if (p.selective)
        {
            __syncthreads();
            // stage C only: reuse stage_rows with B pointing at C
            const float* gC = p.C + ((i64)s.b * p.L + tt) * N;
            int valid = max(0, min(TILE, s.t1 - tt)) * N;
            for (int k = threadIdx.x; k < TILE * N; k += blockDim.x) sC[k] = k < valid ? gC[k] : 0.f;
            __syncthreads();
        }
        int steps = min(TILE, s.t1 - tt);
        for (int k = steps - 1; k >= 0; k--)
        {
            i64 off = ((i64)s.b * p.L + tt + k) * p.Dch + s.dc;
            float dt = scan_dt(p.delta[off] + bias, p.softplus);
            float dy = p.dout[off];
            if (p.z) dy *= silu_f(p.z[off]);
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                bool ok = n0 + i < N;
                float cn = p.selective ? (ok ? sC[k * N + n0 + i] : 0.f) : cv[i];
                g[i] = exp2f(dt * a2[i]) * fmaf(cn, dy, g[i]);
            }
        }
    }
    if (!s.active) return;
    i64 base = (((i64)s.b * p.chunks + s.c) * p.Dch + s.d) * N;
    #pragma unroll
    for (int i = 0; i < NS; i++) if (n0 + i < N) p.carryG[base + n0 + i] = g[i];
}

// E_c from õ_{c+1} and S_{c+1}, one thread per (b, d, n); in place in carryG.
extern "C" __global__ void scan_carry_backward(ScanParams p)
{
    i64 n = (i64)p.batch * p.Dch * p.N;
    GRID_STRIDE(i, n)
    {
        int s = (int)(i % p.N);
        i64 bd = i / p.N;
        int d = (int)(bd % p.Dch);
        i64 b = bd / p.Dch;
        float a2 = p.A[(i64)d * p.N + s] * LOG2E, E = 0.f;
        for (int c = p.chunks - 1; c >= 0; c--)
        {
            i64 at = ((b * p.chunks + c) * p.Dch + d) * p.N + s;
            float local = c > 0 ? p.carryG[at] : 0.f;
            p.carryG[at] = E;
            E = c == p.chunks - 1 ? local : fmaf(exp2f(a2 * p.sumDt[(b * p.chunks + c) * p.Dch + d]), E, local);
        }
    }
}

// Shared memory: sB, sC [T, N] (selective), sdB, sdC [T, N] (selective), checkpoints [T/SUB, blockDim, NS].
template <int NS>
__device__ void scan_backward_impl(const ScanParams& p)
{
    extern __shared__ float smem[];
    ScanLane s = scan_lane(p, blockIdx.y);
    const int N = p.N, n0 = s.sub * NS, T = p.chunkLen, lane = threadIdx.x & 31;
    const int tn = p.selective ? T * N : 0;
    float *sB = smem, *sC = sB + tn, *sdB = sC + tn, *sdC = sdB + tn, *ckpt = sdC + tn;

    float a2[NS], h[NS], g[NS], bv[NS], cv[NS], accA[NS], accB[NS], accC[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        i64 pn = (i64)s.dc * N + n0 + i;
        i64 cn = (((i64)s.b * p.chunks + s.c) * p.Dch + s.dc) * N + n0 + i;
        a2[i] = ok ? p.A[pn] * LOG2E : 0.f;
        bv[i] = ok && !p.selective ? p.B[pn] : 0.f;
        cv[i] = ok && !p.selective ? p.C[pn] : 0.f;
        h[i] = ok && s.c > 0 ? p.carryH[cn] : 0.f;
        g[i] = ok && s.c < p.chunks - 1 ? p.carryG[cn] : 0.f;
        accA[i] = accB[i] = accC[i] = 0.f;
    }
    const float skip = p.D ? p.D[s.dc] : 0.f, bias = p.bias ? p.bias[s.dc] : 0.f;
    float accD = 0.f, accBias = 0.f;
    if (p.selective)
    {
        stage_rows(p, s.b, s.t0, T, s.t1, sB, sC);
        for (int k = threadIdx.x; k < tn; k += blockDim.x) sdB[k] = sdC[k] = 0.f;
    }
    __syncthreads();

    // pass 1: the state before every sub-block
    const int subs = (s.t1 - s.t0 + SUB - 1) / SUB;
    for (int sb = 0; sb < subs; sb++)
    {
        float* ck = ckpt + ((i64)sb * blockDim.x + threadIdx.x) * NS;
        #pragma unroll
        for (int i = 0; i < NS; i++) ck[i] = h[i];
        #pragma unroll
        for (int k = 0; k < SUB; k++)
        {
            int t = s.t0 + sb * SUB + k;
            if (t >= s.t1) break;
            i64 off = ((i64)s.b * p.L + t) * p.Dch + s.dc;
            float dt = scan_dt(p.delta[off] + bias, p.softplus), dtu = dt * p.u[off];
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                float bn = p.selective ? (n0 + i < N ? sB[(t - s.t0) * N + n0 + i] : 0.f) : bv[i];
                h[i] = fmaf(exp2f(dt * a2[i]), h[i], dtu * bn);
            }
        }
    }

    // pass 2: sub-blocks last to first
    for (int sb = subs - 1; sb >= 0; sb--)
    {
        const int tb = s.t0 + sb * SUB;
        float h0[NS], hs[SUB][NS], as[SUB][NS], dts[SUB], us[SUB], raws[SUB];
        const float* ck = ckpt + ((i64)sb * blockDim.x + threadIdx.x) * NS;
        #pragma unroll
        for (int i = 0; i < NS; i++) h0[i] = ck[i];
        #pragma unroll
        for (int k = 0; k < SUB; k++)
        {
            int t = min(tb + k, s.t1 - 1);
            i64 off = ((i64)s.b * p.L + t) * p.Dch + s.dc;
            raws[k] = p.delta[off] + bias;
            dts[k] = scan_dt(raws[k], p.softplus);
            us[k] = p.u[off];
            float dtu = dts[k] * us[k];
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                float bn = p.selective ? (n0 + i < N ? sB[(t - s.t0) * N + n0 + i] : 0.f) : bv[i];
                float prev = k == 0 ? h0[i] : hs[k - 1][i];
                as[k][i] = exp2f(dts[k] * a2[i]);
                hs[k][i] = fmaf(as[k][i], prev, dtu * bn);
            }
        }
        #pragma unroll
        for (int k = SUB - 1; k >= 0; k--)
        {
            int t = tb + k;
            if (t >= s.t1) continue;
            i64 off = ((i64)s.b * p.L + t) * p.Dch + s.dc;
            const float uu = us[k], dt = dts[k], dtu = dt * uu;
            const float dout = p.dout[off];
            float dy = dout, zz = 0.f;
            if (p.z) { zz = p.z[off]; dy = dout * silu_f(zz); }
            float yv = 0.f, sumB = 0.f, ddtA = 0.f;
            float cb[NS], cc[NS];
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                bool ok = n0 + i < N;
                int sn = (t - s.t0) * N + n0 + i;
                float bn = p.selective ? (ok ? sB[sn] : 0.f) : bv[i];
                float cn = p.selective ? (ok ? sC[sn] : 0.f) : cv[i];
                float hc = hs[k][i], hp = k == 0 ? h0[i] : hs[k - 1][i];
                yv = fmaf(cn, hc, yv);
                float gi = fmaf(cn, dy, g[i]);
                cc[i] = dy * hc;                 // dC_t
                cb[i] = gi * dtu;                // dB_t
                sumB = fmaf(gi, bn, sumB);
                float gah = gi * as[k][i] * hp;
                accA[i] = fmaf(gah, dt, accA[i]);
                ddtA = fmaf(gah, a2[i], ddtA);
                g[i] = gi * as[k][i];
            }
            sumB = channel_sum(sumB, p.tpc);
            ddtA = channel_sum(ddtA, p.tpc);
            float ddt = fmaf(ddtA, LN2, uu * sumB);
            float du = fmaf(skip, dy, dt * sumB);
            float dd = p.softplus ? (raws[k] > 20.f ? ddt : ddt * sigmoid_f(raws[k])) : ddt;
            accD = fmaf(dy, uu, accD);
            accBias += dd;
            if (p.dz) yv = channel_sum(yv, p.tpc);
            if (s.sub == 0 && s.active)
            {
                p.du[off] = du;
                p.ddelta[off] = dd;
                if (p.dz) p.dz[off] = dout * fmaf(skip, uu, yv) * silu_grad_f(zz);
            }
            if (p.selective)
            {
                // sum this step's dB_t, dC_t over the warp's channels, then add into the block's rows
                #pragma unroll
                for (int i = 0; i < NS; i++)
                {
                    float vb = s.active ? cb[i] : 0.f, vc = s.active ? cc[i] : 0.f;
                    for (int o = p.tpc; o < 32; o <<= 1)
                    {
                        vb += __shfl_xor_sync(FULL_MASK, vb, o);
                        vc += __shfl_xor_sync(FULL_MASK, vc, o);
                    }
                    if (lane < p.tpc && n0 + i < N)
                    {
                        atomicAdd(&sdB[(t - s.t0) * N + n0 + i], vb);
                        atomicAdd(&sdC[(t - s.t0) * N + n0 + i], vc);
                    }
                }
            }
            else
            {
                #pragma unroll
                for (int i = 0; i < NS; i++) { accB[i] += cb[i]; accC[i] += cc[i]; }
            }
        }
    }

    if (s.active)
    {
        #pragma unroll
        for (int i = 0; i < NS; i++)
        {
            if (n0 + i >= N) continue;
            i64 pn = (i64)s.d * N + n0 + i;
            atomicAdd(&p.dA[pn], accA[i]);
            if (!p.selective) { atomicAdd(&p.dB[pn], accB[i]); atomicAdd(&p.dC[pn], accC[i]); }
        }
        if (s.sub == 0)
        {
            if (p.dD) atomicAdd(&p.dD[s.d], accD);
            if (p.dbias) atomicAdd(&p.dbias[s.d], accBias);
        }
    }
    if (p.selective)
    {
        __syncthreads();
        float* gB = p.dB + ((i64)s.b * p.L + s.t0) * N;
        float* gC = p.dC + ((i64)s.b * p.L + s.t0) * N;
        int valid = (s.t1 - s.t0) * N;
        for (int k = threadIdx.x; k < valid; k += blockDim.x)
        {
            atomicAdd(&gB[k], sdB[k]);
            atomicAdd(&gC[k], sdC[k]);
        }
    }
}

#define SCAN_BACKWARD(NS)                                                                                        \
    extern "C" __global__ void __launch_bounds__(128) scan_backward_local_ns##NS(ScanParams p) { scan_backward_local_impl<NS>(p); } \
    extern "C" __global__ void __launch_bounds__(128) scan_backward_ns##NS(ScanParams p) { scan_backward_impl<NS>(p); }
SCAN_BACKWARD(1)
SCAN_BACKWARD(2)
SCAN_BACKWARD(4)
