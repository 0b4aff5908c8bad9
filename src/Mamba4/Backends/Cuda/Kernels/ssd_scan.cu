// Mamba-2's SSD scan (Ops/SsdScan.cs has the math; SsdScanReference is the plain twin), chunked as mamba_ssm's
// ssd_combined, F32 throughout with plain FMA. Layout: x, y, dy, dx [b, L, H, P]; dt [b, L, H]; B, C [b, L, G, N];
// head h reads group h / (H/G). Within chunk c (steps t0 ≤ t < t1), a_t = dt_t·A, cum_t = Σ_{t0≤r≤t} a_r:
//   ssd_dt_cumsum      dt_t = clamp(softplus(dt_t + dtBias), dtMin, dtMax) and cum_t            → dtp, cum [b, H, L]
//   ssd_chunk_state    X_c = Σ_s exp(cumEnd − cum_s)·dt_s·x_s ⊗ B_s                            → states [b, chunks, H, P, N]
//   ssd_state_passing  S0_c = exp(cumEnd_{c−1})·S0_{c−1} + X_{c−1} (the state at each chunk's start; S0_0 = 0), lastState
//   ssd_bmm            C_t·B_s within each chunk, once per group
//   ssd_mix_fwd        y_t = exp(cum_t)·S0 C_t  +  Σ_{s≤t} exp(cum_t − cum_s)·dt_s·(C_t·B_s)·x_s  +  D·x_t
// Backward (G_t = ∂loss/∂S_t): the forward states again, then R_c = the gradient entering chunk c from later chunks,
//   ssd_chunk_dstate   Y_c = Σ_u exp(cum_u)·dy_u ⊗ C_u;  ssd_state_passing_backward  R_c = exp(cumEnd_{c+1})·R_{c+1} + Y_{c+1}
//   so that within the chunk G_t = exp(cumEnd − cum_t)·R + Σ_{u≥t} exp(cum_u − cum_t)·dy_u ⊗ C_u, and
//   ssd_mix_bx   dx_t = D·dy_t + dt_t·G_t B_t   (G_t B_t = exp(cumEnd − cum_t)·R B_t + Σ_{u≥t} exp(cum_u − cum_t)(C_u·B_t)·dy_u)
//   ssd_mix_db   dB_t = Σ_h dt_t·G_tᵀ x_t      ssd_mix_dc  dC_t = Σ_h S_tᵀ dy_t (S_t = exp(cum_t)·S0 + the in-chunk part)
//   ∂loss/∂a_t = Σ over pairs s < t ≤ u of M[u, s] = exp(cum_u − cum_s)·dt_s·(dy_u·x_s)(C_u·B_s), split by where s, u lie:
//     both outside the chunk  K_c = exp(cumEnd)·⟨R, S0⟩                (ssd_state_passing_backward, per tile of P·N)
//     s before, u ≥ t inside  Σ_{u≥t} dy_u·y_off_u                        (ssd_mix_bf: the forward's two parts dotted with dy)
//     s < t inside, u after   Σ_{s<t} dt_s·x_s·(exp(cumEnd − cum_s)·R B_s)  (ssd_mix_bx)
//     both inside             Σ_{t'<t} (Σ_{u>t'} M[u, t'] − Σ_{s<t'} M[t', s])  (strict column and row sums of M from bx and bf)
//   ddt_t = A·∂loss/∂a_t + x_t·G_t B_t, dA = Σ dt_t·∂loss/∂a_t, then the clamp and softplus (ssd_finalize per chunk, ssd_reduce).
// Every sum is written by one thread or block in a fixed order: the backward is deterministic (no atomics).
// ssd_step: one decoding step, a warp per (b, h, p) row of the state.

struct SsdParams
{
    const float *x, *dt, *A, *B, *C, *D, *dtBias, *dy;
    float *y, *lastState;
    float *dtp;              // [b, H, L]: dt after bias, softplus, clamp
    double *cum;             // [b, H, L]: Σ dt·A within the chunk, in double so that cum_t − cum_s keeps F32 precision in long chunks
    float *states, *rstates; // [b, chunks, H, P, N]: X_c then S0_c; Y_c then R_c
    float *scal;             // [6][b, H, L]: backward per-step scalars (see ssd_mix_bf / ssd_mix_bx)
    float *chunkDot;         // [b, H, chunks, tiles]: K_c per tile of 256 state elements
    float *partials;         // [3][b, H, chunks]: dA, dD, dDtBias of each chunk
    float *cbm;              // [b, chunks, G, Qp, Qp]: C_t·B_s within each chunk (Qp = chunk rounded up to 32), shared by the group's heads
    float *dx, *ddt, *dA, *dB, *dC, *dD, *dDtBias;
    float dtMin, dtMax;
    int batch, L, H, P, G, N, chunk, chunks, softplus, tiles;
};

#define SSD_HL(p) ((i64)(p).batch * (p).H * (p).L)

// dt after bias, softplus and the clamp, and the within-chunk cumulative sum of dt·A; a thread per (b, c, h).
extern "C" __global__ void ssd_dt_cumsum(SsdParams p)
{
    GRID_STRIDE(i, (i64)p.batch * p.chunks * p.H)
    {
        int h = (int)(i % p.H), c = (int)((i / p.H) % p.chunks), b = (int)(i / ((i64)p.H * p.chunks));
        i64 bh = (i64)b * p.H + h;
        float a = p.A[h], bias = p.dtBias ? p.dtBias[h] : 0.f;
        double sum = 0.0;
        int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
        for (int t = t0; t < t1; t++)
        {
            float v = p.dt[((i64)b * p.L + t) * p.H + h] + bias;
            if (p.softplus) v = softplus_f(v);
            v = fminf(fmaxf(v, p.dtMin), p.dtMax);
            sum += (double)(v * a);
            p.dtp[bh * p.L + t] = v;
            p.cum[bh * p.L + t] = sum;
        }
    }
}

// out[j1, j2] = Σ_{s in chunk} w_s·Z1_s[j1]·Z2_s[j2] over a 32 × 32 tile of (P, N); block 256 = 32 (n) × 8 (p, 4 rows each).
// MODE 0: X_c (Z1 = x, Z2 = B, w = exp(cumEnd − cum_s)·dt_s); MODE 1: Y_c (Z1 = dy, Z2 = C, w = exp(cum_u)).
template <int MODE> __device__ __forceinline__ void chunk_state(const SsdParams& p)
{
    __shared__ float z1s[32][33], z2s[32][33], ws[32];
    int nTiles = (p.N + 31) / 32;
    int n0 = (blockIdx.x % nTiles) * 32, p0 = (blockIdx.x / nTiles) * 32;
    int c = blockIdx.y, bh = blockIdx.z, h = bh % p.H, b = bh / p.H, g = h / (p.H / p.G);
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
    const float* z1 = (MODE == 0 ? p.x : p.dy) + ((i64)b * p.L * p.H + h) * p.P;
    const float* z2 = (MODE == 0 ? p.B : p.C) + ((i64)b * p.L * p.G + g) * p.N;
    i64 z1Row = (i64)p.H * p.P, z2Row = (i64)p.G * p.N;
    const double* cum = p.cum + (i64)bh * p.L;
    const float* dtp = p.dtp + (i64)bh * p.L;
    double cumEnd = cum[t1 - 1];
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int s0 = t0; s0 < t1; s0 += 32)
    {
        __syncthreads();
        for (int k = threadIdx.x; k < 32 * 32; k += 256)
        {
            int s = k >> 5, j = k & 31, t = s0 + s;
            z1s[s][j] = t < t1 && p0 + j < p.P ? z1[t * z1Row + p0 + j] : 0.f;
            z2s[s][j] = t < t1 && n0 + j < p.N ? z2[t * z2Row + n0 + j] : 0.f;
        }
        if (threadIdx.x < 32)
        {
            int t = s0 + threadIdx.x;
            ws[threadIdx.x] = t < t1 ? (MODE == 0 ? expf((float)(cumEnd - cum[t])) * dtp[t] : expf((float)cum[t])) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int s = 0; s < 32; s++)
        {
            float v = z2s[s][tx] * ws[s];
#pragma unroll
            for (int i = 0; i < 4; i++) acc[i] += z1s[s][ty + 8 * i] * v;
        }
    }
    float* out = (MODE == 0 ? p.states : p.rstates) + (((i64)b * p.chunks + c) * p.H + h) * p.P * p.N;
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int row = p0 + ty + 8 * i, col = n0 + tx;
        if (row < p.P && col < p.N) out[(i64)row * p.N + col] = acc[i];
    }
}

extern "C" __global__ void __launch_bounds__(256) ssd_chunk_state(SsdParams p) { chunk_state<0>(p); }
extern "C" __global__ void __launch_bounds__(256) ssd_chunk_dstate(SsdParams p) { chunk_state<1>(p); }

// X_c → S0_c in place (chunk order), the last state after the final chunk; a thread per (b, h, state element).
// Grid (tiles of 256 elements, b·H).
extern "C" __global__ void __launch_bounds__(256) ssd_state_passing(SsdParams p)
{
    i64 pn = (i64)p.P * p.N, e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    int bh = blockIdx.y, h = bh % p.H, b = bh / p.H;
    if (e >= pn) return;
    float s = 0.f;
    for (int c = 0; c < p.chunks; c++)
    {
        float* at = p.states + (((i64)b * p.chunks + c) * p.H + h) * pn + e;
        float local = *at;
        *at = s;
        int tEnd = min(p.L, (c + 1) * p.chunk) - 1;
        s = expf((float)p.cum[(i64)bh * p.L + tEnd]) * s + local;
    }
    if (p.lastState) p.lastState[(i64)bh * pn + e] = s;
}

// Y_c → R_c in place (reverse chunk order; R of the last chunk is 0), and K_c = exp(cumEnd_c)·⟨R_c, S0_c⟩ per tile.
extern "C" __global__ void __launch_bounds__(256) ssd_state_passing_backward(SsdParams p)
{
    i64 pn = (i64)p.P * p.N, e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    int bh = blockIdx.y, h = bh % p.H, b = bh / p.H;
    bool in = e < pn;
    float r = 0.f, next = 0.f;   // R_{c+1} and Y_{c+1}
    for (int c = p.chunks - 1; c >= 0; c--)
    {
        if (c < p.chunks - 1)
        {
            int tEnd = min(p.L, (c + 2) * p.chunk) - 1;
            r = expf((float)p.cum[(i64)bh * p.L + tEnd]) * r + next;
        }
        i64 at = (((i64)b * p.chunks + c) * p.H + h) * pn + e;
        float local = in ? p.rstates[at] : 0.f;
        if (in) p.rstates[at] = r;
        float dot = block_sum(in ? r * p.states[at] : 0.f);
        int tEnd = min(p.L, (c + 1) * p.chunk) - 1;
        if (threadIdx.x == 0) p.chunkDot[((i64)bh * p.chunks + c) * p.tiles + blockIdx.x] = expf((float)p.cum[(i64)bh * p.L + tEnd]) * dot;
        next = local;
    }
}

// C_t·B_s of one chunk and group (mamba_ssm's bmm_chunk), tiles of 32 × 32 with s-tile ≤ t-tile; grid (⌈chunk/32⌉², chunks, b·G).
// The fwd, bf and bx chunk kernels of every head of the group read it instead of each computing it again.
extern "C" __global__ void __launch_bounds__(256) ssd_bmm(SsdParams p)
{
    __shared__ float4 sm4[(32 * 36 + 32 * 36) / 4];
    float* Cs = reinterpret_cast<float*>(sm4);   // [32 k][36 t]
    float* Bs = Cs + 32 * 36;                    // [32 s][33 k]
    int qt = (p.chunk + 31) / 32, tTile = blockIdx.x / qt, sTile = blockIdx.x % qt;
    int c = blockIdx.y, g = blockIdx.z % p.G, b = blockIdx.z / p.G;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + 32 * tTile, sBase = t0 + 32 * sTile;
    if (sTile > tTile || tBase >= t1) return;   // uniform over the block
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float* Cg = p.C + ((i64)b * p.L * p.G + g) * p.N;
    const float* Bg = p.B + ((i64)b * p.L * p.G + g) * p.N;
    i64 row = (i64)p.G * p.N;
    float cb[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k0 = 0; k0 < p.N; k0 += 32)
    {
        __syncthreads();
        for (int e = threadIdx.x; e < 32 * 32; e += 256)
        {
            int r = e >> 5, k = e & 31, t = tBase + r, s = sBase + r;
            bool kin = k0 + k < p.N;
            Cs[k * 36 + r] = t < t1 && kin ? Cg[t * row + k0 + k] : 0.f;
            Bs[r * 33 + k] = s < t1 && kin ? Bg[s * row + k0 + k] : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < 32; k++)
        {
            float w = Bs[lane * 33 + k];
            float4 v4 = *reinterpret_cast<const float4*>(Cs + k * 36 + 4 * warp);
            cb[0] += v4.x * w; cb[1] += v4.y * w; cb[2] += v4.z * w; cb[3] += v4.w * w;
        }
    }
    int qp = qt * 32;
    float* out = p.cbm + (((i64)b * p.chunks + c) * p.G + g) * qp * qp;
#pragma unroll
    for (int i = 0; i < 4; i++) out[(i64)(32 * tTile + 4 * warp + i) * qp + 32 * sTile + lane] = cb[i];
}

// ---- the chunk's two parts, for 32 rows t of one chunk and all J columns ----
// out[t, j] = off_t·Σ_k V_t[k]·S[j, k]  (accOff, off_t applied by the caller)  +  Σ_{s in window(t)} w(t, s)·(V_t·W_s)·Z_s[j]  (accDiag)
//   MODE  V   W   Z   S         k  j  window  w(t, s)
//   FWD   C   B   x   S0[j, k]  n  p  s ≤ t   exp(cum_t − cum_s)·dt_s      (BF: the same, dotted with dy)
//   BX    B   C   dy  R[j, k]   n  p  s ≥ t   exp(cum_s − cum_t)
//   DB    x   dy  C   R[k, j]   p  n  s ≥ t   exp(cum_s − cum_t)
//   DC    dy  x   B   S0[k, j]  p  n  s ≤ t   exp(cum_t − cum_s)·dt_s
// Block 256 = 32 lanes (columns j = lane + 32·jj, jj < JT) × 8 warps (rows t = tBase + 4·warp + i, i < 4).
#define MODE_FWD 0
#define MODE_BF 1
#define MODE_BX 2
#define MODE_DB 3
#define MODE_DC 4
#define SSD_SMEM (3 * 32 * 36 + 256 * 33)   // floats; a multiple of 4 (float4 storage)

template <int MODE, int JT> __device__ __forceinline__ void mix_head(const SsdParams& p, int b, int h, int c, int tBase,
    float (&accOff)[4][JT], float (&accDiag)[4][JT], float* sm)
{
    constexpr bool forward = MODE == MODE_FWD || MODE == MODE_BF || MODE == MODE_DC;
    constexpr bool headV = MODE == MODE_DB || MODE == MODE_DC;   // V, W are head rows (x, dy), k over P; Z group rows, j over N
    constexpr bool strict = MODE == MODE_BF || MODE == MODE_BX;  // without s = t (see mix_head_kernel)
    // a thread's 4 rows are consecutive (4·warp + i), so Vs and Wt keep t innermost and are read 4 rows at a time (float4)
    float* Vs = sm;               // [32 k][36 t]
    float* Ws = sm + 32 * 36;     // [32 s][33 k]
    float* Wt = sm + 2 * 32 * 36; // [32 s][36 t]
    float* big = sm + 3 * 32 * 36;  // S as [j][33 k] (off part), then Z as [32 s][32·JT j] (diagonal part)
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int g = h / (p.H / p.G);
    i64 bh = (i64)b * p.H + h;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
    const float* headX = p.x + ((i64)b * p.L * p.H + h) * p.P;
    const float* headDy = p.dy + ((i64)b * p.L * p.H + h) * p.P;
    const float* grpB = p.B + ((i64)b * p.L * p.G + g) * p.N;
    const float* grpC = p.C + ((i64)b * p.L * p.G + g) * p.N;
    i64 headRow = (i64)p.H * p.P, grpRow = (i64)p.G * p.N;
    const float* V = MODE == MODE_BX ? grpB : MODE == MODE_DB ? headX : MODE == MODE_DC ? headDy : grpC;
    const float* W = MODE == MODE_BX ? grpC : MODE == MODE_DB ? headDy : MODE == MODE_DC ? headX : grpB;
    const float* Z = MODE == MODE_BX ? headDy : MODE == MODE_DB ? grpC : MODE == MODE_DC ? grpB : headX;
    i64 vRow = headV ? headRow : grpRow, zRow = headV ? grpRow : headRow;
    int K = headV ? p.P : p.N, J = headV ? p.N : p.P;
    const float* S = (MODE == MODE_BX || MODE == MODE_DB ? p.rstates : p.states) + (((i64)b * p.chunks + c) * p.H + h) * p.P * p.N;
    const double* cum = p.cum + bh * p.L;
    const float* dtp = p.dtp + bh * p.L;

#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int jj = 0; jj < JT; jj++) accOff[i][jj] = accDiag[i][jj] = 0.f;

    // off part: Σ_k V_t[k]·S[j, k]
    for (int k0 = 0; k0 < K; k0 += 32)
    {
        __syncthreads();
        for (int e = threadIdx.x; e < 32 * 32; e += 256)
        {
            int r = e >> 5, k = e & 31, t = tBase + r;
            Vs[k * 36 + r] = t < t1 && k0 + k < K ? V[t * vRow + k0 + k] : 0.f;
        }
        for (int e = threadIdx.x; e < 32 * JT * 32; e += 256)
        {
            int j, k;
            if (headV) { j = e % (32 * JT); k = e / (32 * JT); }   // S[k, j]: j contiguous
            else { j = e >> 5; k = e & 31; }                        // S[j, k]: k contiguous
            float v = 0.f;
            if (j < J && k0 + k < K) v = headV ? S[(i64)(k0 + k) * p.N + j] : S[(i64)j * p.N + k0 + k];
            big[j * 33 + k] = v;
        }
        __syncthreads();
#pragma unroll 4
        for (int k = 0; k < 32; k++)
        {
            float4 v4 = *reinterpret_cast<const float4*>(Vs + k * 36 + 4 * warp);
            float v[4] = {v4.x, v4.y, v4.z, v4.w};
#pragma unroll
            for (int jj = 0; jj < JT; jj++)
            {
                float s = big[(lane + 32 * jj) * 33 + k];
#pragma unroll
                for (int i = 0; i < 4; i++) accOff[i][jj] += v[i] * s;
            }
        }
    }

    // diagonal part, one tile of 32 steps s at a time
    int sBegin = forward ? t0 : tBase, sEnd = forward ? min(t1, tBase + 32) : t1;
    for (int s0 = sBegin; s0 < sEnd; s0 += 32)
    {
        float cb[4] = {0.f, 0.f, 0.f, 0.f};
        __syncthreads();   // the last tile's Wt and Z are read
        if (!headV)
        {
            // C·B from ssd_bmm: fwd, bf C_t·B_s = cbm[t][s]; bx B_t·C_u = cbm[u][t]
            int qp = (p.chunk + 31) / 32 * 32, tl = tBase - t0 + 4 * warp, sl = s0 - t0 + lane;
            const float* cbm = p.cbm + (((i64)b * p.chunks + c) * p.G + g) * qp * qp;
            if (MODE == MODE_BX)
            {
                float4 v = *reinterpret_cast<const float4*>(cbm + (i64)sl * qp + tl);
                cb[0] = v.x; cb[1] = v.y; cb[2] = v.z; cb[3] = v.w;
            }
            else
            {
#pragma unroll
                for (int i = 0; i < 4; i++) cb[i] = cbm[(i64)(tl + i) * qp + sl];
            }
        }
        else
        for (int k0 = 0; k0 < K; k0 += 32)
        {
            __syncthreads();
            for (int e = threadIdx.x; e < 32 * 32; e += 256)
            {
                int r = e >> 5, k = e & 31, t = tBase + r, s = s0 + r;
                bool kin = k0 + k < K;
                Vs[k * 36 + r] = t < t1 && kin ? V[t * vRow + k0 + k] : 0.f;
                Ws[r * 33 + k] = s < t1 && kin ? W[s * vRow + k0 + k] : 0.f;
            }
            __syncthreads();
#pragma unroll 4
            for (int k = 0; k < 32; k++)
            {
                float w = Ws[lane * 33 + k];
                float4 v4 = *reinterpret_cast<const float4*>(Vs + k * 36 + 4 * warp);
                cb[0] += v4.x * w; cb[1] += v4.y * w; cb[2] += v4.z * w; cb[3] += v4.w * w;
            }
        }
        int s = s0 + lane;
#pragma unroll
        for (int i = 0; i < 4; i++)
        {
            int t = tBase + 4 * warp + i;
            float w = 0.f;
            if (t < t1 && s < t1)
            {
                if (forward) { if (strict ? s < t : s <= t) w = cb[i] * expf((float)(cum[t] - cum[s])) * dtp[s]; }
                else if (strict ? s > t : s >= t) w = cb[i] * expf((float)(cum[s] - cum[t]));
            }
            Wt[lane * 36 + 4 * warp + i] = w;
        }
        for (int e = threadIdx.x; e < 32 * 32 * JT; e += 256)
        {
            int r = e / (32 * JT), j = e % (32 * JT), sr = s0 + r;
            big[e] = sr < t1 && j < J ? Z[sr * zRow + j] : 0.f;
        }
        __syncthreads();
#pragma unroll 4
        for (int sr = 0; sr < 32; sr++)
        {
            float z[JT];
#pragma unroll
            for (int jj = 0; jj < JT; jj++) z[jj] = big[sr * 32 * JT + lane + 32 * jj];
            float4 w4 = *reinterpret_cast<const float4*>(Wt + sr * 36 + 4 * warp);
            float w[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int jj = 0; jj < JT; jj++) accDiag[i][jj] += w[i] * z[jj];
        }
    }
}

// off_t: exp(cum_t) (forward window) or exp(cumEnd − cum_t) (backward window)
__device__ __forceinline__ float off_factor(const SsdParams& p, i64 bh, int c, int t, bool forward)
{
    const double* cum = p.cum + bh * p.L;
    if (forward) return expf((float)cum[t]);
    int tEnd = min(p.L, (c + 1) * p.chunk) - 1;
    return expf((float)(cum[tEnd] - cum[t]));
}

// Grid (⌈chunk/32⌉, chunks, b·H); FWD writes y; BF writes scal[0] = dy·y_off, scal[1] = dy·y_diag without s = t
// (Σ_{s<t} M[t, s]); BX writes dx and scal[2] = x·(G B)_off, scal[3] = x·(G B)_diag without u = t (Σ_{u>t} M[u, t] / dt_t),
// scal[4] = dy·x, scal[5] = C_t·B_t. BF and BX leave the diagonal M[t, t] out of their sums: it dominates them where
// dt·A decays fast, and subtracting it afterwards would cancel away the strict sums' precision.
template <int MODE, int JT> __device__ __forceinline__ void mix_head_kernel(const SsdParams& p)
{
    __shared__ float4 sm4[SSD_SMEM / 4];   // float4: 16-byte aligned
    float* sm = reinterpret_cast<float*>(sm4);
    int c = blockIdx.y, bh = blockIdx.z, h = bh % p.H, b = bh / p.H;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + blockIdx.x * 32;
    if (tBase >= t1) return;
    float accOff[4][JT], accDiag[4][JT];
    mix_head<MODE, JT>(p, b, h, c, tBase, accOff, accDiag, sm);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = h / (p.H / p.G);
    float d = p.D ? p.D[h] : 0.f;
    i64 hl = (i64)bh * p.L;
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int t = tBase + 4 * warp + i;
        if (t >= t1) continue;   // uniform over the warp
        i64 row = ((i64)b * p.L + t) * p.H * p.P + (i64)h * p.P;
        float off = off_factor(p, bh, c, t, MODE != MODE_BX);
        float s1 = 0.f, s2 = 0.f, s3 = 0.f, cbt = 0.f;
        if (MODE == MODE_BX)
        {
            const float* Bt = p.B + (((i64)b * p.L + t) * p.G + g) * p.N;
            const float* Ct = p.C + (((i64)b * p.L + t) * p.G + g) * p.N;
            for (int n = lane; n < p.N; n += 32) cbt += Ct[n] * Bt[n];
            cbt = warp_sum(cbt);
        }
#pragma unroll
        for (int jj = 0; jj < JT; jj++)
        {
            int j = lane + 32 * jj;
            if (j >= p.P) continue;
            float o = off * accOff[i][jj], dg = accDiag[i][jj];
            if (MODE == MODE_FWD) p.y[row + j] = o + dg + d * p.x[row + j];
            if (MODE == MODE_BF) { float dy = p.dy[row + j]; s1 += dy * o; s2 += dy * dg; }
            if (MODE == MODE_BX)
            {
                float dy = p.dy[row + j], xv = p.x[row + j];
                p.dx[row + j] = d * dy + p.dtp[hl + t] * (o + dg + cbt * dy);
                s1 += xv * o; s2 += xv * dg; s3 += dy * xv;
            }
        }
        if (MODE == MODE_BF)
        {
            s1 = warp_sum(s1); s2 = warp_sum(s2);
            if (lane == 0) { p.scal[hl + t] = s1; p.scal[SSD_HL(p) + hl + t] = s2; }
        }
        if (MODE == MODE_BX)
        {
            s1 = warp_sum(s1); s2 = warp_sum(s2); s3 = warp_sum(s3);
            if (lane == 0)
            {
                p.scal[2 * SSD_HL(p) + hl + t] = s1;
                p.scal[3 * SSD_HL(p) + hl + t] = s2;
                p.scal[4 * SSD_HL(p) + hl + t] = s3;
                p.scal[5 * SSD_HL(p) + hl + t] = cbt;
            }
        }
    }
}

// dB (MODE_DB) or dC (MODE_DC) of one group: the heads of the group summed in order. Grid (⌈chunk/32⌉, chunks, b·G).
template <int MODE, int JT> __device__ __forceinline__ void mix_group_kernel(const SsdParams& p)
{
    __shared__ float4 sm4[SSD_SMEM / 4];   // float4: 16-byte aligned
    float* sm = reinterpret_cast<float*>(sm4);
    int c = blockIdx.y, g = blockIdx.z % p.G, b = blockIdx.z / p.G, heads = p.H / p.G;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + blockIdx.x * 32;
    if (tBase >= t1) return;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float total[4][JT], accOff[4][JT], accDiag[4][JT];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int jj = 0; jj < JT; jj++) total[i][jj] = 0.f;
    for (int h = g * heads; h < (g + 1) * heads; h++)
    {
        mix_head<MODE, JT>(p, b, h, c, tBase, accOff, accDiag, sm);
        i64 bh = (i64)b * p.H + h;
#pragma unroll
        for (int i = 0; i < 4; i++)
        {
            int t = min(tBase + 4 * warp + i, t1 - 1);
            float off = off_factor(p, bh, c, t, MODE == MODE_DC);
            float scale = MODE == MODE_DB ? p.dtp[bh * p.L + t] : 1.f;
#pragma unroll
            for (int jj = 0; jj < JT; jj++) total[i][jj] += scale * (off * accOff[i][jj] + accDiag[i][jj]);
        }
    }
    float* out = MODE == MODE_DB ? p.dB : p.dC;
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int t = tBase + 4 * warp + i;
        if (t >= t1) continue;
        i64 row = (((i64)b * p.L + t) * p.G + g) * p.N;
#pragma unroll
        for (int jj = 0; jj < JT; jj++)
        {
            int j = lane + 32 * jj;
            if (j < p.N) out[row + j] = total[i][jj];
        }
    }
}

// Kernels ssd_mix_{fwd,bf,bx}_j{1,2,4} (J = P ≤ 32·JT) and ssd_mix_{db,dc}_j{1,2,4,8} (J = N ≤ 32·JT).
#define SSD_MIX_HEAD(name, MODE, JT) \
    extern "C" __global__ void __launch_bounds__(256) ssd_mix_##name##_j##JT(SsdParams p) { mix_head_kernel<MODE, JT>(p); }
#define SSD_MIX_GROUP(name, MODE, JT) \
    extern "C" __global__ void __launch_bounds__(256) ssd_mix_##name##_j##JT(SsdParams p) { mix_group_kernel<MODE, JT>(p); }
#define SSD_MIX_HEAD_ALL(name, MODE) SSD_MIX_HEAD(name, MODE, 1) SSD_MIX_HEAD(name, MODE, 2) SSD_MIX_HEAD(name, MODE, 4)
#define SSD_MIX_GROUP_ALL(name, MODE) SSD_MIX_GROUP(name, MODE, 1) SSD_MIX_GROUP(name, MODE, 2) SSD_MIX_GROUP(name, MODE, 4) SSD_MIX_GROUP(name, MODE, 8)
SSD_MIX_HEAD_ALL(fwd, MODE_FWD)
SSD_MIX_HEAD_ALL(bf, MODE_BF)
SSD_MIX_HEAD_ALL(bx, MODE_BX)
SSD_MIX_GROUP_ALL(db, MODE_DB)
SSD_MIX_GROUP_ALL(dc, MODE_DC)

// ∂loss/∂a_t within each chunk from the per-step scalars (header comment), then ddt through the clamp and softplus;
// dA, dD, dDtBias of the chunk into partials. A thread per (b, c, h), walking the chunk's steps in order.
extern "C" __global__ void ssd_finalize(SsdParams p)
{
    GRID_STRIDE(i, (i64)p.batch * p.chunks * p.H)
    {
        int h = (int)(i % p.H), c = (int)((i / p.H) % p.chunks), b = (int)(i / ((i64)p.H * p.chunks));
        i64 bh = (i64)b * p.H + h, hl = bh * p.L, n = SSD_HL(p);
        int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
        const float *yOff = p.scal, *yDiag = p.scal + n, *gxOff = p.scal + 2 * n, *gxDiag = p.scal + 3 * n, *dyx = p.scal + 4 * n, *cb = p.scal + 5 * n;
        // the running sums cancel (∂loss/∂a_t is small beside its terms): double, as they are few (one thread per chunk)
        double k = 0.0;
        for (int tile = 0; tile < p.tiles; tile++) k += p.chunkDot[(bh * p.chunks + c) * p.tiles + tile];
        double suffix = 0.0;   // Σ_{u≥t} dy_u·y_off_u
        for (int t = t0; t < t1; t++) suffix += yOff[hl + t];
        float a = p.A[h], bias = p.dtBias ? p.dtBias[h] : 0.f;
        double prefixR = 0.0, inside = 0.0, dA = 0.0, dD = 0.0, dBias = 0.0;
        for (int t = t0; t < t1; t++)
        {
            double dt = p.dtp[hl + t];
            double dLda = k + suffix + prefixR + inside;
            float ddt = (float)(a * dLda + gxOff[hl + t] + gxDiag[hl + t] + (double)cb[hl + t] * dyx[hl + t]);
            dA += dt * dLda;
            dD += dyx[hl + t];
            float raw = p.dt[((i64)b * p.L + t) * p.H + h] + bias;
            float v = p.softplus ? softplus_f(raw) : raw;
            float grad = v < p.dtMin || v > p.dtMax ? 0.f : p.softplus ? ddt * sigmoid_f(raw) : ddt;
            p.ddt[((i64)b * p.L + t) * p.H + h] = grad;
            dBias += grad;
            suffix -= yOff[hl + t];
            prefixR += dt * gxOff[hl + t];
            inside += dt * gxDiag[hl + t] - yDiag[hl + t];
        }
        i64 at = bh * p.chunks + c, parts = (i64)p.batch * p.H * p.chunks;
        p.partials[at] = (float)dA;
        p.partials[parts + at] = (float)dD;
        p.partials[2 * parts + at] = (float)dBias;
    }
}

// dA, dD, dDtBias of each head: its chunks' partials summed over b and c in order.
extern "C" __global__ void ssd_reduce(SsdParams p)
{
    GRID_STRIDE(h, (i64)p.H)
    {
        i64 parts = (i64)p.batch * p.H * p.chunks;
        double dA = 0.0, dD = 0.0, dBias = 0.0;
        for (int b = 0; b < p.batch; b++)
            for (int c = 0; c < p.chunks; c++)
            {
                i64 at = ((i64)b * p.H + h) * p.chunks + c;
                dA += p.partials[at]; dD += p.partials[parts + at]; dBias += p.partials[2 * parts + at];
            }
        p.dA[h] = (float)dA;
        if (p.dD) p.dD[h] = (float)dD;
        if (p.dDtBias) p.dDtBias[h] = (float)dBias;
    }
}

// One decoding step: S ← exp(dt·A)·S + dt·x ⊗ B, y = S C + D·x; a warp per (b, h, p) row (lanes over n), 8 rows per block.
extern "C" __global__ void ssd_step(const float* x, const float* dt, const float* A, const float* B, const float* C,
    const float* D, const float* dtBias, int softplus, float dtMin, float dtMax, float* state, float* y,
    int batch, int H, int P, int G, int N)
{
    i64 row = (i64)blockIdx.x * 8 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= (i64)batch * H * P) return;   // uniform over the warp
    i64 bh = row / P;
    int h = (int)(bh % H), b = (int)(bh / H), g = h / (H / G);
    float v = dt[bh] + (dtBias ? dtBias[h] : 0.f);
    if (softplus) v = softplus_f(v);
    v = fminf(fmaxf(v, dtMin), dtMax);
    float decay = expf(v * A[h]), dx = v * x[row];
    const float* Bg = B + ((i64)b * G + g) * N;
    const float* Cg = C + ((i64)b * G + g) * N;
    float* s = state + row * N;
    float acc = 0.f;
    for (int n = lane; n < N; n += 32)
    {
        float sn = decay * s[n] + dx * Bg[n];
        s[n] = sn;
        acc += sn * Cg[n];
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc + (D ? D[h] : 0.f) * x[row];
}
