// Mamba-2's SSD scan (Ops/SsdScan.cs has the math; SsdScanReference is the plain twin), chunked as mamba_ssm's
// ssd_combined, F32 throughout: products of staged tiles on the tensor cores by the 3xTF32 split (F32 accuracy), sums and
// exponents in F32 (cum in double). Layout: x, y, dy, dx [b, L, H, P]; dt [b, L, H]; B, C [b, L, G, N];
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
//   ssd_mix_db   dB_t = Σ_h dt_t·G_tᵀ x_t      ssd_mix_dc  dC_t = Σ_h S_tᵀ dy_t (S_t = exp(cum_t)·S0 + the in-chunk part):
//   the off parts per head, the in-chunk parts once per group from ssd_dcb's dCB[t, s] = Σ_h exp(cum_t − cum_s)·dt_s·(dy_t·x_s)
//   (= ∂loss/∂(C_t·B_s), s ≤ t), as dC_t += Σ_{s≤t} dCB[t, s]·B_s and dB_t += Σ_{u≥t} dCB[u, t]·C_u (mamba_ssm's dcb route)
//   ∂loss/∂a_t = Σ over pairs s < t ≤ u of M[u, s] = exp(cum_u − cum_s)·dt_s·(dy_u·x_s)(C_u·B_s), split by where s, u lie:
//     both outside the chunk  K_c = exp(cumEnd)·⟨R, S0⟩                (ssd_state_passing_backward, per tile of P·N)
//     s before, u ≥ t inside  Σ_{u≥t} dy_u·y_off_u                        (ssd_mix_bf: the forward's off part dotted with dy)
//     s < t inside, u after   Σ_{s<t} dt_s·x_s·(exp(cumEnd − cum_s)·R B_s)  (ssd_mix_bx)
//     both inside             Σ_{t'<t} (Σ_{u>t'} M[u, t'] − Σ_{s<t'} M[t', s])  (strict column sums of M from bx, row sums from dcb)
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
    float *scal;             // [5][b, H, L]: backward per-step scalars (see ssd_mix_bf / ssd_mix_bx)
    float *chunkDot;         // [b, H, chunks, tiles]: K_c per tile of 256 state elements
    float *partials;         // [3][b, H, chunks]: dA, dD, dDtBias of each chunk
    float *cbm;              // [b, chunks, G, Qp, Qp]: C_t·B_s within each chunk (Qp = chunk rounded up to 64), shared by the group's heads
    float *dcb;              // [b, chunks, G, Qp, Qp]: the backward's ∂loss/∂(C_t·B_s), summed over the group's heads (ssd_dcb)
    float *diagParts;        // [b, H, L, 2⌈chunk/64⌉]: dy_t·y_diag_t without s = t, by 32 steps of s (ssd_dcb; summed in ssd_finalize)
    float *dx, *ddt, *dA, *dB, *dC, *dD, *dDtBias;
    float dtMin, dtMax;
    int batch, L, H, P, G, N, chunk, chunks, softplus, tiles;
};

#define SSD_HL(p) ((i64)(p).batch * (p).H * (p).L)

// A chunk's steps split among a warp's lanes: lane l takes [t0 + l·seg, t0 + (l + 1)·seg) ∩ [t0, t1).
__device__ __forceinline__ void lane_segment(int t0, int t1, int lane, int& a, int& e)
{
    int seg = (t1 - t0 + 31) / 32;
    a = min(t1, t0 + lane * seg);
    e = min(t1, a + seg);
}

// Exclusive prefix sum over the warp's lanes (lane 0 gets 0).
__device__ __forceinline__ double warp_exclusive_sum(double v)
{
    int lane = threadIdx.x & 31;
    double inclusive = v;
    for (int o = 1; o < 32; o <<= 1)
    {
        double u = __shfl_up_sync(FULL_MASK, inclusive, o);
        if (lane >= o) inclusive += u;
    }
    return inclusive - v;
}

#define SSD_WARP_STRIDE(i, n) for (i64 i = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < (n); i += ((i64)gridDim.x * blockDim.x) >> 5)

__device__ __forceinline__ float ssd_dt(const SsdParams& p, int b, int t, int h, float bias)
{
    float v = p.dt[((i64)b * p.L + t) * p.H + h] + bias;
    if (p.softplus) v = softplus_f(v);
    return fminf(fmaxf(v, p.dtMin), p.dtMax);
}

// dt after bias, softplus and the clamp, and the within-chunk cumulative sum of dt·A; a warp per (b, c, h): each lane sums
// its segment of steps, a warp scan gives the segment's start, then the lane writes its steps in order.
extern "C" __global__ void ssd_dt_cumsum(SsdParams p)
{
    int lane = threadIdx.x & 31;
    SSD_WARP_STRIDE(i, (i64)p.batch * p.chunks * p.H)
    {
        int h = (int)(i % p.H), c = (int)((i / p.H) % p.chunks), b = (int)(i / ((i64)p.H * p.chunks));
        i64 bh = (i64)b * p.H + h;
        float a = p.A[h], bias = p.dtBias ? p.dtBias[h] : 0.f;
        int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), ta, te;
        lane_segment(t0, t1, lane, ta, te);
        double local = 0.0;
        for (int t = ta; t < te; t++) local += (double)(ssd_dt(p, b, t, h, bias) * a);
        double sum = warp_exclusive_sum(local);
        for (int t = ta; t < te; t++)
        {
            float v = ssd_dt(p, b, t, h, bias);
            sum += (double)(v * a);
            p.dtp[bh * p.L + t] = v;
            p.cum[bh * p.L + t] = sum;
        }
    }
}

// ---- products on the tensor cores: F32-accurate by the 3xTF32 split (X3), or TF32 alone (as mamba_ssm's tl.dot) ----
// v rounded to TF32 (10 mantissa bits, half away from zero) by integer arithmetic, as the bits the mma reads.
__device__ __forceinline__ unsigned tf32_round(float v) { return (__float_as_uint(v) + 0x1000u) & 0xffffe000u; }

// The same for a single-TF32 product, which reads nothing else of v: a NaN stays NaN (0x7fffffff, whose top 19 bits are a
// NaN too); tf32_round alone would carry a NaN's mantissa into its sign (0x7fffffff → −0) or, with only low bits set, leave
// ±∞, and a diverging run would hide it. ±∞ and overflow to ∞ round as in tf32_round. (tf32_split needs no check: its lo
// is v − hi, NaN whenever v is.)
__device__ __forceinline__ unsigned tf32_round_nan(float v)
{
    unsigned u = __float_as_uint(v);
    return (u & 0x7fffffffu) > 0x7f800000u ? 0x7fffffffu : (u + 0x1000u) & 0xffffe000u;
}

// A value as it is staged for mix_product: as it is (X3: split as read) or already rounded to TF32 (ROUND), so that the
// single-TF32 product reads it as it is, once per staged element instead of once per warp that reads it.
template <bool ROUND> __device__ __forceinline__ float staged(float v) { return ROUND ? __uint_as_float(tf32_round_nan(v)) : v; }

// a = hi + lo with hi = a rounded to TF32's 10 mantissa bits, lo = a − hi (exact in F32, |lo| ≤ 2⁻¹¹|a|), which the mma reads
// truncated to its top 19 bits; a·b ≈ hi_a·hi_b + hi_a·lo_b + lo_a·hi_b, each term's error ≤ ~2⁻²¹ of a·b: F32 accuracy from
// TF32 mma (TF32 alone, as mamba_ssm's tl.dot, is ~1e-3 relative; the tests ask 1e-5). hi by integer arithmetic (round half
// away from zero, as cvt.rna.tf32, which compiles to four instructions with its ±∞/NaN check; two here): the split is most
// of the product's instructions. An input of ±∞ gives NaN (∞ − ∞ in lo) where F32 FMA would give ±∞.
__device__ __forceinline__ void tf32_split(float v, unsigned& hi, unsigned& lo)
{
    hi = tf32_round(v);
    lo = __float_as_uint(v - __uint_as_float(hi));
}

// d += a·b for one 16 × 8 tile over 8 k (mma.m16n8k8; lane = 4·g + t: a = (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4);
// b = (t, g), (t + 4, g); d = (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1))
__device__ __forceinline__ void mma_tf32(float& d0, float& d1, float& d2, float& d3, const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// acc += Σ_k A(row, k)·B(k, col) over 32 staged k, for 64 rows × 16·CN columns: warp w takes rows 16·(w % 4) + [0, 16) and
// columns (w / 4)·8·CN + [0, 8·CN) as CN mma tiles; acc[r][nt] is register r of tile nt (mix_rows turns it into rows).
// Each tile staged as its source runs, with k contiguous (A_ROWS: A[row·lda + k]; B_COLS: B[col·ldb + k]; stride ≡ 4 mod 32
// floats, MIX_LDK) or not (A[k·lda + row], B[k·ldb + col]; stride ≡ 8 mod 32, MIX_LD): the fragment reads are then free of
// bank conflicts, and so are the staging writes of consecutive source elements.
// rowScale: factors of this lane's two rows (mix_rows_of), applied to A as it is read (1 where there are none).
// X3 = false: one TF32 product; the caller stages B and (unless ROUND_A) A through staged<true>, and A is rounded as it is
// read where its row factors are applied then (ROUND_A).
template <int CN, bool A_ROWS, bool B_COLS, bool X3, bool ROUND_A = false> __device__ __forceinline__ void mix_product(const float* A,
    int lda, const float* Bt, int ldb, float (&acc)[4][CN], float rowScale0 = 1.f, float rowScale8 = 1.f)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int row = 16 * (warp & 3) + g, col = (warp >> 2) * 8 * CN + g;
    auto at = [&](int r, int k) { return (r ? rowScale8 : rowScale0) * (A_ROWS ? A[(row + r) * lda + k + t] : A[(k + t) * lda + row + r]); };
    auto bt = [&](int k, int c) { return B_COLS ? Bt[(col + c) * ldb + k + t] : Bt[(k + t) * ldb + col + c]; };
#pragma unroll
    for (int k = 0; k < 32; k += 8)
    {
        if constexpr (!X3)
        {
            auto ab = [&](int r, int kk) { return ROUND_A ? tf32_round_nan(at(r, kk)) : __float_as_uint(at(r, kk)); };
            unsigned a[4] = {ab(0, k), ab(8, k), ab(0, k + 4), ab(8, k + 4)};
#pragma unroll
            for (int n = 0; n < CN; n++)
                mma_tf32(acc[0][n], acc[1][n], acc[2][n], acc[3][n], a, __float_as_uint(bt(k, 8 * n)), __float_as_uint(bt(k + 4, 8 * n)));
        }
        else
        {
            unsigned ah[4], al[4];
            tf32_split(at(0, k), ah[0], al[0]);
            tf32_split(at(8, k), ah[1], al[1]);
            tf32_split(at(0, k + 4), ah[2], al[2]);
            tf32_split(at(8, k + 4), ah[3], al[3]);
#pragma unroll
            for (int n = 0; n < CN; n++)
            {
                unsigned bh0, bl0, bh1, bl1;
                tf32_split(bt(k, 8 * n), bh0, bl0);
                tf32_split(bt(k + 4, 8 * n), bh1, bl1);
                mma_tf32(acc[0][n], acc[1][n], acc[2][n], acc[3][n], al, bh0, bh1);   // the small terms first
                mma_tf32(acc[0][n], acc[1][n], acc[2][n], acc[3][n], ah, bl0, bl1);
                mma_tf32(acc[0][n], acc[1][n], acc[2][n], acc[3][n], ah, bh0, bh1);
            }
        }
    }
}

// The two rows of A this lane reads in mix_product (the second is the first + 8).
__device__ __forceinline__ int mix_row_of() { return 16 * ((threadIdx.x >> 5) & 3) + ((threadIdx.x & 31) >> 2); }

// Where mix_product's acc[r][n] of this lane lies in the 64 × 16·CN result: row, col.
template <int CN> __device__ __forceinline__ void mma_element(int r, int n, int& row, int& col)
{
    row = mix_row_of() + 8 * (r >> 1);
    col = (threadIdx.x >> 7) * 8 * CN + 8 * n + 2 * (threadIdx.x & 3) + (r & 1);
}

// An accumulator of mix_product to rows: afterwards acc[i][4q + jj] holds row 4·ty + i, column 4·tx + 64·q + jj (ty, tx =
// thread / 16, thread % 16), as the epilogues read it. Through shared memory sm (32·(16·CN + 4) floats), 32 rows at a time;
// the caller's staged tiles in sm must be read (the first barrier here sees to it) and sm is free again after the return
// for writes behind a barrier.
template <int CN> __device__ __forceinline__ void mix_rows(float (&acc)[4][CN], float* sm)
{
    constexpr int LD = 16 * CN + 4;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float rows[4][CN];
#pragma unroll
    for (int half = 0; half < 2; half++)
    {
        __syncthreads();   // sm is free
        if ((threadIdx.x >> 6 & 1) == half)   // rows 32·half + [0, 32)
#pragma unroll
            for (int n = 0; n < CN; n++)
#pragma unroll
                for (int r = 0; r < 4; r++)
                {
                    int row, col;
                    mma_element<CN>(r, n, row, col);
                    sm[(row - 32 * half) * LD + col] = acc[r][n];
                }
        __syncthreads();
        if (ty >> 3 == half)
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int q = 0; q < CN / 4; q++)
                {
                    float4 v = *reinterpret_cast<const float4*>(sm + (4 * (ty & 7) + i) * LD + 4 * tx + 64 * q);
                    rows[i][4 * q] = v.x; rows[i][4 * q + 1] = v.y; rows[i][4 * q + 2] = v.z; rows[i][4 * q + 3] = v.w;
                }
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < CN; j++) acc[i][j] = rows[i][j];
}

// out[j1, j2] = Σ_{s in chunk} w_s·Z1_s[j1]·Z2_s[j2] over a 64 × 64 tile of (P, N): block 256, mix_product over steps staged
// 32 at a time with w_s folded into Z1 (the weights of 256 steps at a time computed once, a thread each).
// MODE 0: X_c (Z1 = x, Z2 = B, w = exp(cumEnd − cum_s)·dt_s); MODE 1: Y_c (Z1 = dy, Z2 = C, w = exp(cum_u)).
#define SSD_TILE 64
#define SSD_TILE_LD (SSD_TILE + 8)   // row stride of a staged tile (floats; ≡ 8 mod 32, see mix_product)
template <int MODE, bool X3> __device__ __forceinline__ void chunk_state(const SsdParams& p)
{
    __shared__ float4 sm4[2 * 32 * SSD_TILE_LD / 4];
    __shared__ float ws[256];
    float* z1s = reinterpret_cast<float*>(sm4);   // [32 s][SSD_TILE_LD]
    float* z2s = z1s + 32 * SSD_TILE_LD;
    int nTiles = (p.N + SSD_TILE - 1) / SSD_TILE;
    int n0 = (blockIdx.x % nTiles) * SSD_TILE, p0 = (blockIdx.x / nTiles) * SSD_TILE;
    int c = blockIdx.y, bh = blockIdx.z, h = bh % p.H, b = bh / p.H, g = h / (p.H / p.G);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
    const float* z1 = MODE == 0 ? p.x : p.dy;
    const float* z2 = MODE == 0 ? p.B : p.C;
    unsigned z1Row = p.H * p.P, z2Row = p.G * p.N;   // offsets in 32 bits (the host keeps every SSD tensor under 2³¹ elements)
    const double* cum = p.cum + (i64)bh * p.L;
    const float* dtp = p.dtp + (i64)bh * p.L;
    double cumEnd = cum[t1 - 1];
    float acc[4][4] = {}, v1[8], v2[8];   // v1, v2: the next 32 steps' loads, issued before the product of the last
    // element i of a thread: step s0 + r0 + 4·i, column j (the loads as a base pointer and a stride: few address instructions)
    int r0 = threadIdx.x / SSD_TILE, j = threadIdx.x % SSD_TILE;
    bool in1 = p0 + j < p.P, in2 = n0 + j < p.N;
    unsigned base1 = (unsigned)((b * p.L * p.H + h) * p.P) + (unsigned)r0 * z1Row + p0 + j;
    unsigned base2 = (unsigned)((b * p.L * p.G + g) * p.N) + (unsigned)r0 * z2Row + n0 + j;
    auto fetch = [&](int s0) {
        unsigned a1 = base1 + (unsigned)s0 * z1Row, a2 = base2 + (unsigned)s0 * z2Row;
#pragma unroll
        for (int i = 0; i < 8; i++)
        {
            bool t = s0 + r0 + 4 * i < t1;
            v1[i] = t && in1 ? z1[a1 + 4 * i * z1Row] : 0.f;
            v2[i] = t && in2 ? z2[a2 + 4 * i * z2Row] : 0.f;
        }
    };
    fetch(t0);
    for (int s0 = t0; s0 < t1; s0 += 32)
    {
        if (((s0 - t0) & 255) == 0)   // ws was last read before the previous product's barrier
        {
            int t = s0 + threadIdx.x;
            ws[threadIdx.x] = t >= t1 ? 0.f : MODE == 0 ? expf((float)(cumEnd - cum[t])) * dtp[t] : expf((float)cum[t]);
        }
        __syncthreads();   // the last block of steps is read; ws is written
#pragma unroll
        for (int i = 0; i < 8; i++)
        {
            int k = threadIdx.x + 256 * i, r = k / SSD_TILE, j = k % SSD_TILE;
            z1s[r * SSD_TILE_LD + j] = staged<!X3>(ws[((s0 - t0) & 255) + r] * v1[i]);
            z2s[r * SSD_TILE_LD + j] = staged<!X3>(v2[i]);
        }
        __syncthreads();
        if (s0 + 32 < t1) fetch(s0 + 32);
        mix_product<4, false, false, X3>(z1s, SSD_TILE_LD, z2s, SSD_TILE_LD, acc);
    }
    mix_rows<4>(acc, z1s);
    float* out = (MODE == 0 ? p.states : p.rstates) + (((i64)b * p.chunks + c) * p.H + h) * p.P * p.N;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
        {
            int row = p0 + 4 * ty + i, col = n0 + 4 * tx + j;
            if (row < p.P && col < p.N) out[(i64)row * p.N + col] = acc[i][j];
        }
}

// The kernels with products come twice (but bx and ssd_dcb, below): F32-accurate (3xTF32) and, named …_tf32, with TF32
// products (CudaBackend's MatmulPrecision TF32 or BF16).
extern "C" __global__ void __launch_bounds__(256, 3) ssd_chunk_state(SsdParams p) { chunk_state<0, true>(p); }
extern "C" __global__ void __launch_bounds__(256, 3) ssd_chunk_dstate(SsdParams p) { chunk_state<1, true>(p); }
extern "C" __global__ void __launch_bounds__(256, 3) ssd_chunk_state_tf32(SsdParams p) { chunk_state<0, false>(p); }
extern "C" __global__ void __launch_bounds__(256, 3) ssd_chunk_dstate_tf32(SsdParams p) { chunk_state<1, false>(p); }

// X_c → S0_c in place (chunk order), the last state after the final chunk; a thread per (b, h, state element), which loads
// SSD_PASS chunks' values before their serial part (one memory round trip per SSD_PASS chunks, not one per chunk).
// Grid (tiles of 256 elements, b·H).
#define SSD_PASS 8
__device__ __forceinline__ float chunk_end_decay(const SsdParams& p, i64 bh, int c)
{
    return expf((float)p.cum[bh * p.L + min(p.L, (c + 1) * p.chunk) - 1]);
}

extern "C" __global__ void __launch_bounds__(256) ssd_state_passing(SsdParams p)
{
    i64 pn = (i64)p.P * p.N, e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    int bh = blockIdx.y, h = bh % p.H, b = bh / p.H;
    if (e >= pn) return;
    float* base = p.states + ((i64)b * p.chunks * p.H + h) * pn + e;
    i64 chunkStride = (i64)p.H * pn;
    float s = 0.f;
    for (int c0 = 0; c0 < p.chunks; c0 += SSD_PASS)
    {
        float local[SSD_PASS], decay[SSD_PASS];
#pragma unroll
        for (int j = 0; j < SSD_PASS; j++)
            if (c0 + j < p.chunks) { local[j] = base[(c0 + j) * chunkStride]; decay[j] = chunk_end_decay(p, bh, c0 + j); }
#pragma unroll
        for (int j = 0; j < SSD_PASS; j++)
            if (c0 + j < p.chunks) { base[(c0 + j) * chunkStride] = s; s = decay[j] * s + local[j]; }
    }
    if (p.lastState) p.lastState[(i64)bh * pn + e] = s;
}

// Y_c → R_c in place (reverse chunk order; R of the last chunk is 0), and K_c = exp(cumEnd_c)·⟨R_c, S0_c⟩ per tile; loads
// batched as in ssd_state_passing, the SSD_PASS chunks' dot products reduced over the block together.
extern "C" __global__ void __launch_bounds__(256) ssd_state_passing_backward(SsdParams p)
{
    __shared__ float partial[SSD_PASS][8];
    i64 pn = (i64)p.P * p.N, e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    int bh = blockIdx.y, h = bh % p.H, b = bh / p.H, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    bool in = e < pn;
    i64 first = ((i64)b * p.chunks * p.H + h) * pn + (in ? e : 0), chunkStride = (i64)p.H * pn;
    float r = 0.f;   // R_c, built from R_{c+1} and Y_{c+1}
    float next = 0.f, nextDecay = 0.f;
    for (int c0 = p.chunks - 1; c0 >= 0; c0 -= SSD_PASS)
    {
        float local[SSD_PASS], fwd[SSD_PASS], decay[SSD_PASS], dot[SSD_PASS];
#pragma unroll
        for (int j = 0; j < SSD_PASS; j++)
        {
            int c = c0 - j;
            local[j] = fwd[j] = 0.f;
            decay[j] = c >= 0 ? chunk_end_decay(p, bh, c) : 0.f;
            if (c >= 0 && in) { local[j] = p.rstates[first + c * chunkStride]; fwd[j] = p.states[first + c * chunkStride]; }
        }
#pragma unroll
        for (int j = 0; j < SSD_PASS; j++)
        {
            int c = c0 - j;
            if (c < 0) { dot[j] = 0.f; continue; }
            if (c < p.chunks - 1) r = nextDecay * r + next;
            if (in) p.rstates[first + c * chunkStride] = r;
            dot[j] = warp_sum(r * fwd[j]);
            next = local[j];
            nextDecay = decay[j];
        }
        __syncthreads();   // the last batch's partials are read
        if (lane == 0)
#pragma unroll
            for (int j = 0; j < SSD_PASS; j++) partial[j][warp] = dot[j];
        __syncthreads();
        if (threadIdx.x < SSD_PASS && c0 - (int)threadIdx.x >= 0)
        {
            int c = c0 - threadIdx.x;
            float sum = 0.f;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) sum += partial[threadIdx.x][w];
            p.chunkDot[((i64)bh * p.chunks + c) * p.tiles + blockIdx.x] = chunk_end_decay(p, bh, c) * sum;
        }
    }
}

// C_t·B_s of one chunk and group (mamba_ssm's bmm_chunk), tiles of 32 × 32 with s-tile ≤ t-tile; grid (⌈chunk/32⌉², chunks, b·G).
// The fwd, bf and bx chunk kernels of every head of the group read it instead of each computing it again.
#define SSD_QP(p) (((p).chunk + 63) / 64 * 64)   // row stride of cbm: the chunk rounded up to the mix kernels' 64-row tiles
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
    int qp = SSD_QP(p);
    float* out = p.cbm + (((i64)b * p.chunks + c) * p.G + g) * qp * qp;
#pragma unroll
    for (int i = 0; i < 4; i++) out[(i64)(32 * tTile + 4 * warp + i) * qp + 32 * sTile + lane] = cb[i];
}

// ---- the chunk's two parts, for 64 rows t of one chunk and 16·CN columns j from j0 ----
// out[t, j] = off_t·Σ_k V_t[k]·S[j, k]  (mix_off)  +  Σ_{s in window(t)} w(t, s)·M[t, s]·Z_s[j]  (mix_diag)
//   MODE  V   S         k  j  M                    Z   window  w(t, s)
//   FWD   C   S0[j, k]  n  p  C_t·B_s (ssd_bmm)    x   s ≤ t   exp(cum_t − cum_s)·dt_s     (BF: the same, dotted with dy)
//   BX    B   R[j, k]   n  p  C_s·B_t (ssd_bmm)    dy  s ≥ t   exp(cum_s − cum_t)
//   DB    x   R[k, j]   p  n  dCB[s, t] (ssd_dcb)  C   s ≥ t   1 (in dCB)
//   DC    dy  S0[k, j]  p  n  dCB[t, s] (ssd_dcb)  B   s ≤ t   1 (in dCB)
// FWD, BF, BX run both parts for one head; DB and DC sum the off part over the group's heads and add the group's diagonal
// part once (dCB holds the heads' sum). Both parts are products of staged tiles, [32 k][64 rows] by [32 k][16·CN columns]:
// block 256, mix_product's mma tiles; mix_rows hands the epilogues each thread's 4 rows (4·ty + i) × CN columns
// (4·tx + 64·q + jj). The sums are added to the caller's accumulators. FWD, DB and DC fold the row factors into the staged
// V rows (off_t, times dt_t for DB), so that one accumulator holds y, dB or dC; BF and BX keep the two parts apart.
#define MODE_FWD 0
#define MODE_BF 1
#define MODE_BX 2
#define MODE_DB 3
#define MODE_DC 4
#define MIX_ROWS 64
#define MIX_LD (MIX_ROWS + 8)   // row stride of a staged [32 k][64 rows] tile (floats; ≡ 8 mod 32, 16-byte rows)
#define MIX_LDK (32 + 4)        // row stride of a tile staged [rows][32 k] (floats; ≡ 4 mod 32)
#define MIX_A (32 * MIX_LD)     // floats of the staged A tile, either way (= MIX_ROWS · MIX_LDK)
#define MIX_SMEM(CN) (MIX_A + 16 * (CN) * MIX_LDK)   // floats: A, B either way (≥ 32 · (16·CN + 8))

// off_t: exp(cum_t) (forward window) or exp(cumEnd − cum_t) (backward window)
__device__ __forceinline__ float off_factor(const SsdParams& p, i64 bh, int c, int t, bool forward)
{
    const double* cum = p.cum + bh * p.L;
    if (forward) return expf((float)cum[t]);
    int tEnd = min(p.L, (c + 1) * p.chunk) - 1;
    return expf((float)(cum[tEnd] - cum[t]));
}

// Sum over the 16 threads (tx) of a row.
__device__ __forceinline__ float row_sum16(float v)
{
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// The off part, summed over heads [h0, h1): acc += Σ_h off_t·Σ_k V_t[k]·S_h[j, k] (off_t, times dt_t for DB, applied to the
// V rows as mix_product reads them for FWD, DB, DC; applied by the caller for BF, BX, one head each). The stages (head,
// 32 k) run as one sequence, each stage's global loads issued into registers before the product of the stage before.
template <int MODE, int CN, bool X3> __device__ __forceinline__ void mix_off(const SsdParams& p, int b, int h0, int h1, int c,
    int tBase, int j0, float (&acc)[4][CN], float* sm)
{
    constexpr bool forward = MODE == MODE_FWD || MODE == MODE_BF || MODE == MODE_DC;
    constexpr bool headV = MODE == MODE_DB || MODE == MODE_DC;   // V is a head row (x, dy), k over P; j over N
    constexpr bool fold = MODE == MODE_FWD || headV;
    constexpr int COLS = 16 * CN, LDB = COLS + 8, AN = 32 * MIX_ROWS / 256, BN = 32 * COLS / 256;
    float* As = sm;            // [64 rows][MIX_LDK]: V rows
    float* Bs = sm + MIX_A;    // S: [32 k][LDB] (headV) or [COLS][MIX_LDK]
    int g = h0 / (p.H / p.G);
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
    i64 vRow = headV ? (i64)p.H * p.P : (i64)p.G * p.N;
    int K = headV ? p.P : p.N, J = headV ? p.N : p.P;
    float va[AN], sb[BN];
    // Each thread's element i: V row r0 + 8·i at k = lane; S likewise (or, headV, k kb + (256/COLS)·i, column jj). The bases,
    // the rows' bounds and the strides are fixed before the stages, which add only the head's and k0's offsets: the address
    // arithmetic of a stage (a division by the stage count, 64-bit products of the indices, the parameters reread from the
    // constant bank) was most of its instructions once the products were TF32 (the SASS: ~400 of 531).
    int r0 = threadIdx.x >> 5, lane = threadIdx.x & 31, kb = threadIdx.x / COLS, jj = threadIdx.x % COLS;
    const float* V = MODE == MODE_BX ? p.B : MODE == MODE_DB ? p.x : MODE == MODE_DC ? p.dy : p.C;
    const float* S = MODE == MODE_BX || MODE == MODE_DB ? p.rstates : p.states;
    // offsets in 32 bits (the host keeps every SSD tensor under 2³¹ elements): one multiply-add an address
    unsigned vBase = (headV ? (unsigned)((b * p.L * p.H + h0) * p.P) : (unsigned)((b * p.L * p.G + g) * p.N)) + (unsigned)(tBase + r0) * (unsigned)vRow + lane;
    unsigned sBase = (unsigned)(((b * p.chunks + c) * p.H + h0) * p.P * p.N) + (headV ? (unsigned)(kb * p.N + j0 + jj) : (unsigned)((j0 + r0) * p.N + lane));
    const unsigned vHead = headV ? p.P : 0, sHead = p.P * p.N, sK = headV ? p.N : 1, v8 = 8 * (unsigned)vRow, sStep = headV ? (256 / COLS) * p.N : 8 * p.N;
    auto fetch = [&](int hi, int k0) {
        unsigned va0 = vBase + hi * vHead + k0, sb0 = sBase + hi * sHead + k0 * sK;
        bool kIn = k0 + lane < K;
#pragma unroll
        for (int i = 0; i < AN; i++) va[i] = tBase + r0 + 8 * i < t1 && kIn ? V[va0 + i * v8] : 0.f;
#pragma unroll
        for (int i = 0; i < BN; i++)
            sb[i] = (headV ? j0 + jj < J && k0 + kb + 256 / COLS * i < K : j0 + r0 + 8 * i < J && kIn) ? S[sb0 + i * sStep] : 0.f;
    };
    auto rowScale = [&](int h, int r) {
        i64 bh = (i64)b * p.H + h;
        int t = tBase + r;
        return !fold ? 1.f : t < t1 ? off_factor(p, bh, c, t, forward) * (MODE == MODE_DB ? p.dtp[bh * p.L + t] : 1.f) : 0.f;
    };
    fetch(0, 0);
    for (int hi = 0; hi < h1 - h0; hi++)
    {
        float scale0 = rowScale(h0 + hi, mix_row_of()), scale8 = rowScale(h0 + hi, mix_row_of() + 8);
        for (int k0 = 0; k0 < K; k0 += 32)
        {
            __syncthreads();   // the last stage's tiles are read
#pragma unroll
            for (int i = 0; i < AN; i++)
            {
                int e = threadIdx.x + 256 * i;
                As[(e >> 5) * MIX_LDK + (e & 31)] = staged<!X3 && !fold>(va[i]);   // folded: rounded as read, after its factor
            }
#pragma unroll
            for (int i = 0; i < BN; i++)
            {
                int e = threadIdx.x + 256 * i;
                Bs[headV ? e / COLS * LDB + e % COLS : (e >> 5) * MIX_LDK + (e & 31)] = staged<!X3>(sb[i]);
            }
            __syncthreads();
            if (k0 + 32 < K) fetch(hi, k0 + 32);   // the next stage's loads, in flight during the product
            else if (hi + 1 < h1 - h0) fetch(hi + 1, 0);
            mix_product<CN, true, !headV, X3, !X3 && fold>(As, MIX_LDK, Bs, headV ? LDB : MIX_LDK, acc, scale0, scale8);
        }
    }
}

// The diagonal part: acc += Σ_{s in window(t)} w(t, s)·M[t, s]·Z_s[j], one tile of 32 steps s at a time. FWD, BF, BX: head h
// (M from ssd_bmm, w from the head's cum and dt); DB, DC: the group of head h (M = dCB, the heads' sum, w = 1).
template <int MODE, int CN, bool X3> __device__ __forceinline__ void mix_diag(const SsdParams& p, int b, int h, int c, int tBase,
    int j0, float (&acc)[4][CN], float* sm)
{
    constexpr bool forward = MODE == MODE_FWD || MODE == MODE_BF || MODE == MODE_DC;
    constexpr bool group = MODE == MODE_DB || MODE == MODE_DC;
    constexpr bool strict = MODE == MODE_BF || MODE == MODE_BX;  // without s = t (see mix_head_kernel)
    constexpr bool transposed = MODE == MODE_BX || MODE == MODE_DB;   // M[t, s] read as mat[s][t]
    constexpr int COLS = 16 * CN, LDB = COLS + 8;
    float* As = sm;            // [32 s][MIX_LD]: w(t, s)·M[t, s]
    float* Bs = sm + MIX_A;    // [32 s][LDB]: Z rows
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int g = h / (p.H / p.G);
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
    const float* Z = MODE == MODE_BX ? p.dy : MODE == MODE_DB ? p.C : MODE == MODE_DC ? p.B : p.x;
    const float* mat = group ? p.dcb : p.cbm;
    // offsets in 32 bits, fixed before the tiles where they can be (as mix_off)
    unsigned zRow = group ? p.G * p.N : p.H * p.P;
    int J = group ? p.N : p.P, qp = SSD_QP(p);
    unsigned hl = (unsigned)((b * p.H + h) * p.L);   // cum, dtp of this head
    int tl = tBase - t0 + 4 * ty;   // the thread's first row within the chunk; < qp
    unsigned mBase = (unsigned)(((b * p.chunks + c) * p.G + g) * qp * qp) + (transposed ? (unsigned)(2 * tx) * qp + tl : (unsigned)tl * qp + 2 * tx);
    int sBegin = forward ? t0 : tBase, sEnd = forward ? min(t1, tBase + MIX_ROWS) : t1;
    constexpr int BN = 32 * COLS / 256;
    int r0 = threadIdx.x / COLS, j = threadIdx.x % COLS;   // Z's element i: step s0 + r0 + (256/COLS)·i, column j
    unsigned zBase = (group ? (unsigned)((b * p.L * p.G + g) * p.N) : (unsigned)((b * p.L * p.H + h) * p.P)) + (unsigned)r0 * zRow + j0 + j;
    float m[2][4], z[BN], dtS[2];   // the next tile's loads, issued before the product of the last
    double cumS[2];
    auto fetch = [&](int s0) {
        unsigned m0 = mBase + (unsigned)(s0 - t0) * (transposed ? qp : 1), z0 = zBase + (unsigned)s0 * zRow;
#pragma unroll
        for (int q = 0; q < 2; q++)
        {
            int sr = s0 + 2 * tx + q;
            cumS[q] = !group && sr < t1 ? p.cum[hl + sr] : 0.0;
            dtS[q] = !group && forward && sr < t1 ? p.dtp[hl + sr] : 0.f;
#pragma unroll
            for (int i = 0; i < 4; i++)
            {
                int t = tBase + 4 * ty + i;
                // entries outside the window may be unwritten there (ssd_bmm and ssd_dcb write the tiles on and below the
                // diagonal): never read into a product
                bool in = t < t1 && sr < t1 && (forward ? (strict ? sr < t : sr <= t) : (strict ? sr > t : sr >= t));
                m[q][i] = in ? mat[m0 + (transposed ? q * qp + i : i * qp + q)] : 0.f;
            }
        }
#pragma unroll
        for (int i = 0; i < BN; i++)
            z[i] = s0 + r0 + 256 / COLS * i < t1 && j0 + j < J ? Z[z0 + (unsigned)(256 / COLS * i) * zRow] : 0.f;
    };
    if (sBegin < sEnd) fetch(sBegin);
    for (int s0 = sBegin; s0 < sEnd; s0 += 32)
    {
        __syncthreads();   // the last tile's As and Bs are read
#pragma unroll
        for (int q = 0; q < 2; q++)
        {
            float w[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
            {
                int t = tBase + 4 * ty + i;
                if (group || m[q][i] == 0.f) w[i] = m[q][i];   // 0 outside the window
                else if (forward) w[i] = m[q][i] * expf((float)(p.cum[hl + t] - cumS[q])) * dtS[q];   // cum[t] read again (L1):
                else w[i] = m[q][i] * expf((float)(cumS[q] - p.cum[hl + t]));                      // registers limit the blocks
            }
            *reinterpret_cast<float4*>(As + (2 * tx + q) * MIX_LD + 4 * ty) = make_float4(staged<!X3>(w[0]), staged<!X3>(w[1]), staged<!X3>(w[2]), staged<!X3>(w[3]));
        }
#pragma unroll
        for (int i = 0; i < BN; i++)
        {
            int e = threadIdx.x + 256 * i;
            Bs[e / COLS * LDB + e % COLS] = staged<!X3>(z[i]);
        }
        __syncthreads();
        if (s0 + 32 < sEnd) fetch(s0 + 32);
        mix_product<CN, false, false, X3>(As, MIX_LD, Bs, LDB, acc);
    }
}

// dCB[t, s] = Σ_{h in group} exp(cum_t − cum_s)·dt_s·(dy_t·x_s) for s ≤ t within each chunk (∂loss/∂(C_t·B_s) of the diagonal
// part; zero above the diagonal within the tiles written), for the group's dB and dC (mix_diag of DB and DC). Grid (⌈chunk/64⌉²
// tile pairs, chunks, b·G), tiles of 64 × 64 with s-tile ≤ t-tile, the product over P staged 32 at a time (mix_product).
// Each head's factors exp(cum_t − cum_s)·dt_s are applied in the product's own register layout (no mix_rows a head): a lane
// holds rows r0, r0 + 8 and columns c0 + 8·n + {0, 1} of the tile (mma_element). The group's running sums live in shared
// memory and C·B is read from L1 by each head, so that two blocks fit a multiprocessor (with all in registers: ~175, one).
// Each head's terms M_h[t, s] = exp(cum_t − cum_s)·dt_s·(dy_t·x_s)·(C_t·B_s) summed over s < t of half a tile give dy_t·y_diag_t
// (without s = t) by 32-step part of s: diagParts, summed in order by ssd_finalize.
extern "C" __global__ void __launch_bounds__(256, 2) ssd_dcb(SsdParams p)
{
    __shared__ float4 sm4[2 * MIX_A / 4];
    float* As = reinterpret_cast<float*>(sm4);   // [64 t][MIX_LDK]: dy_t
    float* Bs = As + MIX_A;                       // [64 s][MIX_LDK]: x_s
    int qt = (p.chunk + 63) / 64, tTile = blockIdx.x / qt, sTile = blockIdx.x % qt;
    int c = blockIdx.y, g = blockIdx.z % p.G, b = blockIdx.z / p.G, heads = p.H / p.G;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + 64 * tTile, sBase = t0 + 64 * sTile;
    if (sTile > tTile || tBase >= t1) return;   // uniform over the block
    unsigned headRow = p.H * p.P;   // offsets in 32 bits (the host keeps every SSD tensor under 2³¹ elements)
    int qp = SSD_QP(p);
    const float* cbm = p.cbm + (((i64)b * p.chunks + c) * p.G + g) * qp * qp;   // C_t·B_s (ssd_bmm), read by each head (L1)
    // the group's sum so far, [4·r + n][thread]: in shared memory, not registers, so that two blocks fit a multiprocessor
    __shared__ float total[16][256];
#pragma unroll
    for (int e = 0; e < 16; e++) total[e][threadIdx.x] = 0.f;
    // stages (head, 32 of P) in one sequence, each stage's loads issued before the product of the stage before
    int kStages = (p.P + 31) / 32, stages = heads * kStages;
    float dyv[8], xv[8];
    auto fetch = [&](int stage) {
        int h = g * heads + stage / kStages, k0 = stage % kStages * 32;
        int r0 = threadIdx.x >> 5, k = threadIdx.x & 31;   // element i: row r0 + 8·i, k = lane
        bool kin = k0 + k < p.P;
        unsigned head = (unsigned)((b * p.L * p.H + h) * p.P) + k0 + k;
        unsigned dy = head + (unsigned)(tBase + r0) * headRow, x = head + (unsigned)(sBase + r0) * headRow;
#pragma unroll
        for (int i = 0; i < 8; i++)
        {
            dyv[i] = tBase + r0 + 8 * i < t1 && kin ? p.dy[dy + 8 * i * headRow] : 0.f;
            xv[i] = sBase + r0 + 8 * i < t1 && kin ? p.x[x + 8 * i * headRow] : 0.f;
        }
    };
    fetch(0);
    float acc[4][4] = {};
    int parts = 2 * qt, half = threadIdx.x >> 7;   // diagParts by 32 steps of s; warps 4..7 hold the tile's second half
    for (int stage = 0; stage < stages; stage++)
    {
        int h = g * heads + stage / kStages;
        __syncthreads();   // the last stage's tiles are read
#pragma unroll
        for (int i = 0; i < 8; i++)
        {
            int e = threadIdx.x + 256 * i;
            As[(e >> 5) * MIX_LDK + (e & 31)] = dyv[i];
            Bs[(e >> 5) * MIX_LDK + (e & 31)] = xv[i];
        }
        __syncthreads();
        if (stage + 1 < stages) fetch(stage + 1);
        mix_product<4, true, true, true>(As, MIX_LDK, Bs, MIX_LDK, acc);
        if ((stage + 1) % kStages) continue;
        // the head's products are done: its terms, in the accumulators' layout
        i64 hl = ((i64)b * p.H + h) * p.L;
        double cumT[2];
        float rowPart[2] = {};
#pragma unroll
        for (int q = 0; q < 2; q++)
        {
            int t = tBase + mix_row_of() + 8 * q;
            cumT[q] = t < t1 ? p.cum[hl + t] : 0.0;
        }
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
            for (int e = 0; e < 2; e++)
            {
                int row, col;
                mma_element<4>(e, n, row, col);
                int s = sBase + col;
                double cumS = s < t1 ? p.cum[hl + s] : 0.0;
                float dtS = s < t1 ? p.dtp[hl + s] : 0.f;
#pragma unroll
                for (int q = 0; q < 2; q++)
                {
                    int r = 2 * q + e, t = tBase + row + 8 * q;
                    if (t >= t1 || s > t) continue;
                    float m = acc[r][n] * expf((float)(cumT[q] - cumS)) * dtS;
                    total[4 * r + n][threadIdx.x] += m;
                    if (s < t) rowPart[q] += cbm[(i64)(t - t0) * qp + s - t0] * m;
                }
            }
#pragma unroll
        for (int q = 0; q < 2; q++)
        {
            float v = rowPart[q];   // the row's sum over this warp's 32 columns: the lane's 8, then the quad's 4 lanes
            v += __shfl_xor_sync(FULL_MASK, v, 1);
            v += __shfl_xor_sync(FULL_MASK, v, 2);
            int t = tBase + mix_row_of() + 8 * q;
            if ((threadIdx.x & 3) == 0 && t < t1) p.diagParts[(hl + t) * parts + 2 * sTile + half] = v;
        }
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int n = 0; n < 4; n++) acc[r][n] = 0.f;   // the next head's
    }
    float* out = p.dcb + (((i64)b * p.chunks + c) * p.G + g) * qp * qp;
#pragma unroll
    for (int q = 0; q < 2; q++)
#pragma unroll
        for (int n = 0; n < 4; n++)
        {
            int row, col;
            mma_element<4>(2 * q, n, row, col);
            *reinterpret_cast<float2*>(out + (i64)(64 * tTile + row) * qp + 64 * sTile + col) = make_float2(total[8 * q + n][threadIdx.x], total[8 * q + 4 + n][threadIdx.x]);
        }
}

// Grid (⌈chunk/64⌉, chunks, b·H); FWD writes y; BF writes scal[0] = dy·y_off (its in-chunk twin, dy·y_diag without s = t,
// is ssd_dcb's); BX writes dx and scal[1] = x·(G B)_off, scal[2] = x·(G B)_diag without u = t (Σ_{u>t} M[u, t] / dt_t),
// scal[3] = dy·x, scal[4] = C_t·B_t. The strict sums leave the diagonal M[t, t] out: it dominates them where dt·A decays
// fast, and subtracting it afterwards would cancel away their precision. All P columns in one block.
template <int MODE, int CN, bool X3> __device__ __forceinline__ void mix_head_kernel(const SsdParams& p)
{
    __shared__ float4 sm4[MIX_SMEM(CN) / 4];   // float4: 16-byte aligned
    float* sm = reinterpret_cast<float*>(sm4);
    int c = blockIdx.y, bh = blockIdx.z, h = bh % p.H, b = bh / p.H;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + blockIdx.x * MIX_ROWS;
    if (tBase >= t1) return;
    float accOff[4][CN], accDiag[4][CN];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < CN; j++) accOff[i][j] = accDiag[i][j] = 0.f;
    mix_off<MODE, CN, X3>(p, b, h, h + 1, c, tBase, 0, MODE == MODE_FWD ? accDiag : accOff, sm);   // FWD: off_t folded in, one accumulator
    if (MODE != MODE_BF) mix_diag<MODE, CN, X3>(p, b, h, c, tBase, 0, accDiag, sm);   // BF's in-chunk sum comes from ssd_dcb
    if (MODE != MODE_FWD) mix_rows<CN>(accOff, sm);
    if (MODE != MODE_BF) mix_rows<CN>(accDiag, sm);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4, g = h / (p.H / p.G);
    float d = p.D ? p.D[h] : 0.f;
    i64 hl = (i64)bh * p.L;
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int t = tBase + 4 * ty + i;
        bool in = t < t1;   // the row sums below run on every lane
        i64 row = ((i64)b * p.L + (in ? t : t0)) * p.H * p.P + (i64)h * p.P;
        float off = MODE == MODE_FWD || !in ? 0.f : off_factor(p, bh, c, t, MODE != MODE_BX);
        float s1 = 0.f, s2 = 0.f, s3 = 0.f, cbt = 0.f;
        if (MODE == MODE_BX && in)   // C_t·B_t: ssd_bmm's diagonal
        {
            int qp = SSD_QP(p);
            cbt = p.cbm[(((i64)b * p.chunks + c) * p.G + g) * qp * qp + (i64)(t - t0) * qp + (t - t0)];
        }
#pragma unroll
        for (int q = 0; q < CN / 4; q++)
#pragma unroll
            for (int jj = 0; jj < 4; jj++)
            {
                int j = 4 * tx + 64 * q + jj;
                if (!in || j >= p.P) continue;
                float o = off * accOff[i][4 * q + jj], dg = accDiag[i][4 * q + jj];
                if (MODE == MODE_FWD) p.y[row + j] = dg + d * p.x[row + j];
                if (MODE == MODE_BF) s1 += p.dy[row + j] * o;
                if (MODE == MODE_BX)
                {
                    float dy = p.dy[row + j], xv = p.x[row + j];
                    p.dx[row + j] = d * dy + p.dtp[hl + t] * (o + dg + cbt * dy);
                    s1 += xv * o; s2 += xv * dg; s3 += dy * xv;
                }
            }
        if (MODE == MODE_BF)
        {
            s1 = row_sum16(s1);
            if (in && tx == 0) p.scal[hl + t] = s1;
        }
        if (MODE == MODE_BX)
        {
            s1 = row_sum16(s1); s2 = row_sum16(s2); s3 = row_sum16(s3);
            if (in && tx == 0)
            {
                p.scal[SSD_HL(p) + hl + t] = s1;
                p.scal[2 * SSD_HL(p) + hl + t] = s2;
                p.scal[3 * SSD_HL(p) + hl + t] = s3;
                p.scal[4 * SSD_HL(p) + hl + t] = cbt;
            }
        }
    }
}

// dB (MODE_DB) or dC (MODE_DC) of one group: the heads of the group summed in order. Grid (⌈chunk/64⌉·column blocks,
// chunks, b·G), a column block being 16·CN of the N columns.
template <int MODE, int CN, bool X3> __device__ __forceinline__ void mix_group_kernel(const SsdParams& p)
{
    __shared__ float4 sm4[MIX_SMEM(CN) / 4];   // float4: 16-byte aligned
    float* sm = reinterpret_cast<float*>(sm4);
    int colBlocks = (p.N + 16 * CN - 1) / (16 * CN), j0 = (blockIdx.x % colBlocks) * 16 * CN;
    int c = blockIdx.y, g = blockIdx.z % p.G, b = blockIdx.z / p.G, heads = p.H / p.G;
    int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), tBase = t0 + (blockIdx.x / colBlocks) * MIX_ROWS;
    if (tBase >= t1) return;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float total[4][CN];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < CN; j++) total[i][j] = 0.f;
    mix_off<MODE, CN, X3>(p, b, g * heads, (g + 1) * heads, c, tBase, j0, total, sm);   // row factors folded in
    mix_diag<MODE, CN, X3>(p, b, g * heads, c, tBase, j0, total, sm);   // the group's dCB
    mix_rows<CN>(total, sm);
    float* out = MODE == MODE_DB ? p.dB : p.dC;
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int t = tBase + 4 * ty + i;
        if (t >= t1) continue;
        i64 row = (((i64)b * p.L + t) * p.G + g) * p.N;
#pragma unroll
        for (int q = 0; q < CN / 4; q++)
#pragma unroll
            for (int jj = 0; jj < 4; jj++)
            {
                int j = j0 + 4 * tx + 64 * q + jj;
                if (j < p.N) out[row + j] = total[i][4 * q + jj];
            }
    }
}

// Kernels ssd_mix_{fwd,bf,bx}_c{4,8}: CN = 4 for up to 64 of P columns, 8 for 128; ssd_mix_{db,dc}_c4: N in blocks of 64 columns.
// fwd, bf, bx of 64 columns and chunk_state are held to 80 registers, 3 blocks a multiprocessor: issue-bound at 2 blocks, bx and
// fwd ran 9 and 7 % faster so on the H100 despite 16-24 B of spills (bf, chunk_state: no change; chunk_state needs no more
// than 80 anyway). db and dc gained nothing from 3 (24 B spilled): they are held to 2 blocks, 128 registers (which they
// needed before their loads took 32-bit offsets; the TF32 twins asked ~140 without the bound: one block).
// bx and ssd_dcb have no TF32 twin: they make dt's gradient (and A's), sums of terms that cancel, where each TF32 product's
// ~5e-4 would survive (dDtBias 3e-2 from F64 with them in TF32, 2e-3 for mamba_ssm's; with them F32-accurate, 2e-5).
#define SSD_MIX_HEAD(name, MODE, CN, X3, suffix) \
    extern "C" __global__ void __launch_bounds__(256, (CN) == 4 ? 3 : 1) ssd_mix_##name##_c##CN##suffix(SsdParams p) { mix_head_kernel<MODE, CN, X3>(p); }
#define SSD_MIX_GROUP(name, MODE, CN, X3, suffix) \
    extern "C" __global__ void __launch_bounds__(256, 2) ssd_mix_##name##_c##CN##suffix(SsdParams p) { mix_group_kernel<MODE, CN, X3>(p); }
SSD_MIX_HEAD(fwd, MODE_FWD, 4, true, ) SSD_MIX_HEAD(fwd, MODE_FWD, 8, true, )
SSD_MIX_HEAD(fwd, MODE_FWD, 4, false, _tf32) SSD_MIX_HEAD(fwd, MODE_FWD, 8, false, _tf32)
SSD_MIX_HEAD(bf, MODE_BF, 4, true, ) SSD_MIX_HEAD(bf, MODE_BF, 8, true, )
SSD_MIX_HEAD(bf, MODE_BF, 4, false, _tf32) SSD_MIX_HEAD(bf, MODE_BF, 8, false, _tf32)
SSD_MIX_HEAD(bx, MODE_BX, 4, true, ) SSD_MIX_HEAD(bx, MODE_BX, 8, true, )
SSD_MIX_GROUP(db, MODE_DB, 4, true, ) SSD_MIX_GROUP(db, MODE_DB, 4, false, _tf32)
SSD_MIX_GROUP(dc, MODE_DC, 4, true, ) SSD_MIX_GROUP(dc, MODE_DC, 4, false, _tf32)

// ∂loss/∂a_t within each chunk from the per-step scalars (header comment), then ddt through the clamp and softplus;
// dA, dD, dDtBias of the chunk into partials. A warp per (b, c, h): each lane sums its segment of steps, warp scans give
// the running sums at the segment's start, then the lane walks its steps in order.
extern "C" __global__ void ssd_finalize(SsdParams p)
{
    int lane = threadIdx.x & 31;
    SSD_WARP_STRIDE(i, (i64)p.batch * p.chunks * p.H)
    {
        int h = (int)(i % p.H), c = (int)((i / p.H) % p.chunks), b = (int)(i / ((i64)p.H * p.chunks));
        i64 bh = (i64)b * p.H + h, hl = bh * p.L, n = SSD_HL(p);
        int t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk), ta, te;
        lane_segment(t0, t1, lane, ta, te);
        const float *yOff = p.scal, *gxOff = p.scal + n, *gxDiag = p.scal + 2 * n, *dyx = p.scal + 3 * n, *cb = p.scal + 4 * n;
        int parts = 2 * ((p.chunk + 63) / 64);
        auto yDiag = [&](int t) {   // dy_t·y_diag_t without s = t: ssd_dcb's parts by 32 steps of s, in order
            float sum = 0.f;
            for (int k = 0; k <= (t - t0) / 32; k++) sum += p.diagParts[(hl + t) * parts + k];
            return sum;
        };
        // the running sums cancel (∂loss/∂a_t is small beside its terms): double
        double k = 0.0;
        for (int tile = lane; tile < p.tiles; tile += 32) k += p.chunkDot[(bh * p.chunks + c) * p.tiles + tile];
        k = warp_sum(k);
        double segY = 0.0, segR = 0.0, segIn = 0.0;
        for (int t = ta; t < te; t++)
        {
            double dt = p.dtp[hl + t];
            segY += yOff[hl + t];
            segR += dt * gxOff[hl + t];
            segIn += dt * gxDiag[hl + t] - yDiag(t);
        }
        double suffix = warp_sum(segY) - warp_exclusive_sum(segY);   // Σ_{u≥t} dy_u·y_off_u at the segment's start
        double prefixR = warp_exclusive_sum(segR), inside = warp_exclusive_sum(segIn);
        float a = p.A[h], bias = p.dtBias ? p.dtBias[h] : 0.f;
        double dA = 0.0, dD = 0.0, dBias = 0.0;
        for (int t = ta; t < te; t++)
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
            inside += dt * gxDiag[hl + t] - yDiag(t);
        }
        dA = warp_sum(dA); dD = warp_sum(dD); dBias = warp_sum(dBias);
        if (lane == 0)
        {
            i64 at = bh * p.chunks + c, parts = (i64)p.batch * p.H * p.chunks;
            p.partials[at] = (float)dA;
            p.partials[parts + at] = (float)dD;
            p.partials[2 * parts + at] = (float)dBias;
        }
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
