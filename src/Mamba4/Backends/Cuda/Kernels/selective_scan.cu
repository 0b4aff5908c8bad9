// The fused selective scan (Ops/SelectiveScan.cs), channels last: u, delta, z, y [B, L, D]; A [D, N];
// B, C [B, L, N] (selective) or [D, N] (time-invariant); D, bias [D].
//   dt_t = softplus(delta_t + bias),  a_t[n] = exp(dt_t·A[n]),  h_t = a_t ⊙ h_{t−1} + dt_t·B_t·u_t
//   y_t = ⟨C_t, h_t⟩ + D·u_t,  out_t = y_t·silu(z_t)
//
// Threads: a thread owns NS states (n = sub·NS + i) of one channel of one batch row; TPC = ⌈N/NS⌉ (rounded up to a power of two) threads
// share a channel (adjacent lanes; ⟨C, h⟩ is summed with shuffles). The state lives in registers; exp is
// exp2 with A pre-scaled by log2 e. B_t, C_t rows are staged in shared memory (one row serves every channel).
// Nothing of size [B, L, D, N] is written.
//
// Chunks over L (for parallelism and for the backward's memory): chunk c covers steps [c·T, (c+1)·T). The
// recurrence is linear, so with S_c = Σ_{t∈c} dt_t and h̃_c the chunk's end state started from zero,
//   H_{c+1} = exp(A·S_c) ⊙ H_c + h̃_c     (H_c: the state before chunk c, H_0 = h0 or 0)
// forward: phase 0 (local) writes h̃_c and S_c, scan_carry_forward turns them into H_c, phase 1 runs each
// chunk from H_c writing y (and the last state).
//
// Backward (g_t = ∂loss/∂h_t; dy_t = dout_t·silu(z_t)):
//   g_t = C_t·dy_t + a_{t+1} ⊙ g_{t+1}
//   dC_t += dy_t·h_t,  dB_t += g_t·dt_t·u_t,  dA += g_t ⊙ a_t ⊙ h_{t−1}·dt_t,  du_t = D·dy_t + dt_t⟨g_t, B_t⟩
//   ddt_t = ⟨g_t, a_t ⊙ h_{t−1} ⊙ A⟩ + u_t⟨g_t, B_t⟩,  ddelta_t = ddt_t·σ(delta_t + bias),  dD = Σ dy·u,  dbias = Σ ddelta
//   dz_t = dout_t·y_t·silu'(z_t),  dh0 = g_{−1} = a_0 ⊙ g_0 (chunk 0 writes it after its reverse sweep)
// Chunks in reverse: õ_c = a_{t0}·g_{t0} of chunk c with nothing coming from later chunks (forward phase 2, together
// with h̃_c); the gradient entering chunk c from the later ones is E_c = õ_{c+1} + exp(A·S_{c+1}) ⊙ E_{c+1} (scan_carries, with H_c).
// scan_backward then runs each chunk from H_c and E_c: pass 1 keeps h every SUB steps in shared memory, pass 2
// visits those sub-blocks last to first, recomputes SUB steps of h and a into registers and sweeps them in reverse.
// dB_t, dC_t (selective) are summed over the warp's channels with shuffles, written to the warp's own rows in shared
// memory, summed over the block's warps every flushSubs sub-blocks (backward_flush) and over blocks with atomics; dA, dD,
// dbias (and time-invariant dB, dC) with one atomic per thread.
#define FT 8     // forward tile: steps whose inputs are copied in at once
#define SCAN_FWD_BLOCK 128   // threads per block of the forward kernels (CudaBackend.ScanBlock)

struct ScanParams
{
    const float *u, *delta, *A, *B, *C, *D, *z, *bias;
    float *y, *last;
    float *carryH;    // [B, chunks, D, N]: h̃_c, then H_c
    float *sumDt;     // [B, chunks, D]: S_c
    float *carryG;    // [B, chunks, D, N]: õ_c, then E_c
    const float *dout;
    float *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;
    const float* h0;  // [B, D, N]: h_{-1} (null: zeros)
    float* dh0;       // [B, D, N]: ∂loss/∂h_{-1} (null: not wanted)
    int batch, L, Dch, N, chunkLen, chunks, tpc, selective, softplus;
    int flushSubs;    // backward: the warps' dB, dC rows are summed every flushSubs sub-blocks (CudaBackend's FlushSubs)
};

// Element types T of the sequence tensors (u, Δ, z, y, B, C, dout and their gradients): float, bf16_bits or half_bits
// (common.cuh). A, D, Δ-bias, the state, the chunk carries and every sum stay F32.
// the two 16-bit values of a 32-bit word (low address first)
__device__ __forceinline__ void unpack2(unsigned w, bf16_bits, float& lo, float& hi) { lo = __uint_as_float(w << 16); hi = __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ void unpack2(unsigned w, half_bits, float& lo, float& hi)
{
    lo = to_f32(half_bits{(unsigned short)(w & 0xffffu)});
    hi = to_f32(half_bits{(unsigned short)(w >> 16)});
}

// Sum over the TPC adjacent lanes that share a channel (every lane of the warp must call it).
__device__ __forceinline__ float channel_sum(float v, int tpc)
{
    for (int o = tpc >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// TPC ≥ 4: three sums over the lanes of a channel, scattered: lane sub of the channel gets q_{sub mod 4} summed (q3 = 0),
// three shuffles for TPC = 4 (three channel_sums take six). Bit 1 splits (q0, q1) from (q2, q3), bit 0 the pair's two.
__device__ __forceinline__ float channel_scatter3(float q0, float q1, float q2, int lane, int tpc)
{
    const bool up = (lane & 2) != 0, odd = (lane & 1) != 0;
    float k0 = up ? q2 : q0, k1 = up ? 0.f : q1;
    k0 += __shfl_xor_sync(FULL_MASK, up ? q0 : q2, 2);
    k1 += __shfl_xor_sync(FULL_MASK, up ? q1 : 0.f, 2);
    float v = (odd ? k1 : k0) + __shfl_xor_sync(FULL_MASK, odd ? k0 : k1, 1);
    for (int o = 4; o < tpc; o <<= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float scan_dt(float raw, int softplus) { return softplus ? fast_softplus(raw) : raw; }

// The forward's per-step softplus and silu: 2^x, log2 and 1/x as single special-function instructions (.ftz: no denormal
// fix-ups; 1 + e ≥ 1, and results that small round to 0 as with __expf), no branches. softplus as fast_softplus.
__device__ __forceinline__ float lg2_ftz(float x) { float y; asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
__device__ __forceinline__ float rcp_ftz(float x) { float y; asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
__device__ __forceinline__ float step_softplus(float x)
{
    const float e = fast_exp2(-fabsf(x) * LOG2E);
    const float l = e < 0.01f ? e * (1.f - e * (0.5f - e * (1.f / 3.f))) : lg2_ftz(1.f + e) * LN2;
    return x > 20.f ? x : fmaxf(x, 0.f) + l;
}
__device__ __forceinline__ float step_dt(float raw, int softplus) { return softplus ? step_softplus(raw) : raw; }
__device__ __forceinline__ float step_silu(float x) { return x * rcp_ftz(1.f + fast_exp2(-x * LOG2E)); }

// Where this thread sits: channel d (clamped to a real one when the block overhangs D), its first state, chunk, batch row.
struct ScanLane
{
    int sub, d, dc, n0, valid, c, b, t0, t1;
    bool active;
};

// The state before chunk c of (b, d), element n: H_c from the carries for c > 0, else h0 (0 without it).
__device__ __forceinline__ float scan_start(const ScanParams& p, int b, int c, int d, int n)
{
    if (c > 0) return p.carryH[(((i64)b * p.chunks + c) * p.Dch + d) * p.N + n];
    return p.h0 ? p.h0[((i64)b * p.Dch + d) * p.N + n] : 0.f;
}

__device__ __forceinline__ ScanLane scan_lane(const ScanParams& p, int chunk, int tpc, int cpb)
{
    ScanLane s;
    s.sub = threadIdx.x % tpc;
    s.d = blockIdx.x * cpb + threadIdx.x / tpc;
    s.active = s.d < p.Dch;
    s.dc = s.active ? s.d : p.Dch - 1;
    s.c = chunk;
    s.b = blockIdx.z;
    s.t0 = chunk * p.chunkLen;
    s.t1 = min(p.L, s.t0 + p.chunkLen);
    return s;
}

// Copies rows [t0, t0 + count) of the selective [B, L, N] arrays x (and y) into shared memory as F32 [count, np]
// (np = NS·TPC ≥ N, zero padded; zero rows past t1), so a thread reads its NS values of a row as float4s.
template <typename T>
__device__ __forceinline__ void stage_rows(const ScanParams& p, const float* x, const float* y, int b, int t0, int count, int t1, int np,
    float* sx, float* sy)
{
    const T* gx = reinterpret_cast<const T*>(x) + ((i64)b * p.L + t0) * p.N;
    const T* gy = reinterpret_cast<const T*>(y) + ((i64)b * p.L + t0) * p.N;
    const int rows = max(0, min(count, t1 - t0)), total = count * np;
    for (int k0 = threadIdx.x; k0 < total; k0 += 4 * blockDim.x)
    {
        T vx[4], vy[4];   // four elements' loads issued before the first store waits on one
        #pragma unroll
        for (int j = 0; j < 4; j++)
        {
            const int k = k0 + j * blockDim.x, r = k / np, c = k - r * np;
            const bool ok = k < total && r < rows && c < p.N;
            vx[j] = ok ? gx[r * p.N + c] : T{};
            vy[j] = ok && sy ? gy[r * p.N + c] : T{};
        }
        #pragma unroll
        for (int j = 0; j < 4; j++)
        {
            const int k = k0 + j * blockDim.x;
            if (k >= total) break;
            sx[k] = to_f32(vx[j]);
            if (sy) sy[k] = to_f32(vy[j]);
        }
    }
}

// v = row[0 … NS−1] as F32 (row 16-byte aligned when NS·sizeof(T) is a multiple of 16)
template <int NS, typename T>
__device__ __forceinline__ void load_row(const T* row, float (&v)[NS])
{
    if constexpr (sizeof(T) == 2 && NS % 8 == 0)
    {
        #pragma unroll
        for (int q = 0; q < NS / 8; q++)
        {
            uint4 t = reinterpret_cast<const uint4*>(row)[q];
            unpack2(t.x, T{}, v[8 * q], v[8 * q + 1]);
            unpack2(t.y, T{}, v[8 * q + 2], v[8 * q + 3]);
            unpack2(t.z, T{}, v[8 * q + 4], v[8 * q + 5]);
            unpack2(t.w, T{}, v[8 * q + 6], v[8 * q + 7]);
        }
    }
    else if constexpr (sizeof(T) == 2 && NS % 2 == 0)
    {
        #pragma unroll
        for (int q = 0; q < NS / 2; q++) unpack2(reinterpret_cast<const unsigned*>(row)[q], T{}, v[2 * q], v[2 * q + 1]);
    }
    else if constexpr (sizeof(T) == 4 && NS % 4 == 0)
    {
        #pragma unroll
        for (int q = 0; q < NS / 4; q++)
        {
            float4 t = reinterpret_cast<const float4*>(row)[q];
            v[4 * q] = t.x; v[4 * q + 1] = t.y; v[4 * q + 2] = t.z; v[4 * q + 3] = t.w;
        }
    }
    else
    {
        #pragma unroll
        for (int i = 0; i < NS; i++) v[i] = to_f32(row[i]);
    }
}

// ---- forward ----

// Tiles of FT steps in shared-memory slots: while a tile is computed, cp.async already copies the next tile's u, Δ, z
// (a [FT, channels] slab) and B, C rows, so memory latency hides behind the arithmetic (scan_forward_impl).
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" :: "r"(s), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
}

// Up to four [FT, cols] slabs dst_j[r·cols + c] = src_j[base + r·stride + c] (zero outside valid rows and columns), cols a
// power of two. Copies of 16 bytes where base, stride, cols and the valid columns are multiples of 16 bytes (`wide`), else
// 4 bytes (two elements of a 2-byte T when `pairs`: the same in 4 bytes), else plain loads. Row and column from shifts.
template <typename T>
__device__ __forceinline__ void copy_slabs(T* dst, int dstStride, int count, const T* s0, const T* s1, const T* s2, const T* s3,
    i64 base, i64 stride, int cols, int validRows, int validCols, bool wide, bool pairs)
{
    const int per = wide ? 16 / (int)sizeof(T) : sizeof(T) == 2 && pairs ? 2 : 1;
    const int units = cols / per, shift = 31 - __clz(units);
    for (int k = threadIdx.x; k < FT * units; k += SCAN_FWD_BLOCK)
    {
        const int r = k >> shift, c = (k & (units - 1)) * per, o = r * cols + c;
        const bool ok = r < validRows && c < validCols;
        const i64 at = ok ? base + r * stride + c : 0;
        if (wide)
        {
            cp_async16(dst + o, s0 + at, ok);
            if (count > 1) cp_async16(dst + dstStride + o, s1 + at, ok);
            if (count > 2) cp_async16(dst + 2 * dstStride + o, s2 + at, ok);
            if (count > 3) cp_async16(dst + 3 * dstStride + o, s3 + at, ok);
        }
        else if (sizeof(T) == 4 || pairs)
        {
            cp_async4(dst + o, s0 + at, ok);
            if (count > 1) cp_async4(dst + dstStride + o, s1 + at, ok);
            if (count > 2) cp_async4(dst + 2 * dstStride + o, s2 + at, ok);
            if (count > 3) cp_async4(dst + 3 * dstStride + o, s3 + at, ok);
        }
        else
        {
            dst[o] = ok ? s0[at] : T{};
            if (count > 1) dst[dstStride + o] = ok ? s1[at] : T{};
            if (count > 2) dst[2 * dstStride + o] = ok ? s2[at] : T{};
            if (count > 3) dst[3 * dstStride + o] = ok ? s3[at] : T{};
        }
    }
}

// How the B, C rows travel: 16-byte copies (`wide`), else 4-byte pairs of a 2-byte T, else plain loads.
template <typename T>
__device__ __forceinline__ void row_copy(const ScanParams& p, int np, bool withC, bool& wide, bool& pairs)
{
    constexpr int W = 16 / sizeof(T);
    const unsigned long long bc = (unsigned long long)p.B | (withC ? (unsigned long long)p.C : 0ull);
    wide = p.N % W == 0 && np % W == 0 && bc % 16 == 0;
    pairs = p.N % 2 == 0 && np % 2 == 0 && bc % 4 == 0;
}

// One tile's buffer (elements of T): su, sd, sz, so [FT, cpb] (u, Δ, z, dout of the block's channels), then sB, sC [FT, np].
template <typename T>
__device__ __forceinline__ void issue_tile(const ScanParams& p, int b, int tt, int t1, int cpb, int np, bool withZ, bool withDout,
    bool withRows, bool withC, int slabs, T* buf)
{
    constexpr int W = 16 / sizeof(T);   // elements per 16-byte copy
    const int d0 = blockIdx.x * cpb, steps = min(FT, t1 - tt), valid = min(cpb, p.Dch - d0);
    const i64 base = ((i64)b * p.L + tt) * p.Dch + d0;
    const T *u = reinterpret_cast<const T*>(p.u), *delta = reinterpret_cast<const T*>(p.delta);
    const T *z = reinterpret_cast<const T*>(p.z), *dout = reinterpret_cast<const T*>(p.dout);
    // the slabs present, in buffer order (z's slot stays when z is absent: dout is always the fourth)
    const int count = withDout ? 4 : withZ ? 3 : 2;
    const unsigned long long at = (unsigned long long)u | (unsigned long long)delta | (withZ ? (unsigned long long)z : 0ull) |
        (withDout ? (unsigned long long)dout : 0ull);
    copy_slabs(buf, FT * cpb, count, u, delta, withZ ? z : u, dout, base, p.Dch, cpb, steps, valid,
        p.Dch % W == 0 && cpb % W == 0 && at % 16 == 0, p.Dch % 2 == 0 && at % 4 == 0);
    if (withRows)
    {
        const i64 row = ((i64)b * p.L + tt) * p.N;
        const T *B = reinterpret_cast<const T*>(p.B), *C = reinterpret_cast<const T*>(p.C);
        bool wide, pairs;
        row_copy<T>(p, np, withC, wide, pairs);
        copy_slabs(buf + slabs * FT * cpb, FT * np, withC ? 2 : 1, B, C, B, B, row, p.N, np, steps, p.N, wide, pairs);
    }
    cp_async_commit();
}

// 16 bytes of outputs from the staging buffer: as they are when the output type TO is the staging type T, else (T float,
// TO 2-byte) eight F32 values rounded to TO (to nearest even) and packed, low address first.
template <typename T, typename TO>
__device__ __forceinline__ uint4 staged16(const T* src)
{
    if constexpr (sizeof(T) == sizeof(TO)) return *reinterpret_cast<const uint4*>(src);
    else
    {
        const float4 a = reinterpret_cast<const float4*>(src)[0], b = reinterpret_cast<const float4*>(src)[1];
        auto two = [](float lo, float hi) { return (unsigned)from_f32<TO>(lo).v | ((unsigned)from_f32<TO>(hi).v << 16); };
        return make_uint4(two(a.x, a.y), two(a.z, a.w), two(b.x, b.y), two(b.z, b.w));
    }
}

// The warp's columns of a tile's outputs y (staged in shared memory over the tile's u slab, [FT, cpb] elements of T) to
// y [B, L, D] of type TO (T, or BF16 from F32 staging: the scan_forward_*_obf16 kernels): 16-byte stores where the warp's
// channels are whole and aligned, else one element per store. A warp covers the 32 / TPC channels of its own lanes, so
// only __syncwarp is needed between the steps and this.
template <typename T, typename TO>
__device__ __forceinline__ void store_tile_y(const ScanParams& p, const T* sy, int b, int tt, int steps, int cpb, int tpc)
{
    constexpr int W = 16 / sizeof(TO);
    const int lane = threadIdx.x & 31, cw = 32 / tpc, c0 = (threadIdx.x >> 5) * cw, d0 = blockIdx.x * cpb + c0;
    const int valid = min(cw, p.Dch - d0);
    if (valid <= 0) return;
    TO* y = reinterpret_cast<TO*>(p.y) + ((i64)b * p.L + tt) * p.Dch + d0;
    if (valid == cw && cw % W == 0 && p.Dch % W == 0 && reinterpret_cast<unsigned long long>(y) % 16 == 0)
    {
        const int units = cw / W, shift = 31 - __clz(units);   // 16-byte units per row (a power of two)
        for (int k = lane; k < steps * units; k += 32)
        {
            const int r = k >> shift, c = (k & (units - 1)) * W;
            *reinterpret_cast<uint4*>(y + (i64)r * p.Dch + c) = staged16<T, TO>(sy + r * cpb + c0 + c);
        }
    }
    else
        for (int k = lane; k < steps * cw; k += 32)
        {
            const int r = k / cw, c = k - r * cw;
            if (c < valid) y[(i64)r * p.Dch + c] = from_f32<TO>(to_f32(sy[r * cpb + c0 + c]));
        }
}

// PHASE 0: h̃_c, S_c (local end state from zero, Σ dt).  1: outputs y (and the last state) from H_c.
// 2 (scan_prepare, for the backward): h̃_c, S_c and õ_c in one forward sweep, since
//   õ_c = a_{t0}(C_{t0}dy_{t0} + a_{t0+1}(C_{t0+1}dy_{t0+1} + …)) = Σ_t P_t·C_t·dy_t,   P_t = Π_{s=t0..t} a_s
// so one exp per state and step serves both.
// TPC: lanes per channel, 0 = p.tpc at run time (TPC = 1 drops the lane sums and divisions).
// PRE: dt and the gate silu(z) of a tile are computed once per (step, channel) by the whole block into shared memory
// instead of by each of the TPC lanes of a channel at every step (with TPC = 4, 4× fewer softplus and silu).
//
// One barrier per tile. Tile j's inputs travel by cp.async into slot j % STAGES while tile j − 1 is computed; at the top
// of tile j a thread waits for its copies and the block meets once; after that barrier the slot of tile j − 1 is free for
// tile j + 1. When a tile also needs block-wide preparation (2-byte B, C rows widened to F32 once per tile, or PRE), that is
// done one tile ahead — tile j + 1 after the barrier of tile j, into a second buffer — so the same barrier publishes it:
// then three slots (j computed, j + 1 prepared, j + 2 in flight). Outputs y of a tile are staged over its u slab (each
// thread overwrites only the u it has read) and stored after the tile by each warp, 16 bytes per store.
template <int NS, int TPC, bool SEL, int PHASE, typename T, bool PRE = false, typename TO = T>
__device__ __forceinline__ void scan_forward_impl(const ScanParams& p, int chunk)
{
    extern __shared__ float4 smem4[];
    T* smem = reinterpret_cast<T*>(smem4);
    constexpr bool outputs = PHASE == 1, grads = PHASE == 2, widen = SEL && sizeof(T) == 2, ahead = widen || PRE;
    constexpr int STAGES = ahead ? 3 : 2;
    const int tpc = TPC > 0 ? TPC : p.tpc, cpb = SCAN_FWD_BLOCK / tpc;   // compile-time constants when TPC > 0
    ScanLane s = scan_lane(p, chunk, tpc, cpb);
    const int N = p.N, n0 = s.sub * NS, np = NS * tpc, chl = threadIdx.x / tpc;
    const int slabs = grads ? 4 : 3, slot = slabs * FT * cpb + (SEL ? 2 * FT * np : 0);
    // after the slots (elements of T): rows widened to F32 [2][2·FT·np] (widen), then dt and gate [2][2][FT·cpb] F32 (PRE)
    float* rowsF = reinterpret_cast<float*>(smem + STAGES * slot);
    float* preBuf = rowsF + (widen ? 4 * FT * np : 0);
    float a2[NS], h[NS], bv[NS], cv[NS], P[NS], o[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        a2[i] = ok ? p.A[(i64)s.dc * N + n0 + i] * LOG2E : 0.f;
        bv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.B)[(i64)s.dc * N + n0 + i]) : 0.f;
        cv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.C)[(i64)s.dc * N + n0 + i]) : 0.f;
        h[i] = ok && outputs ? scan_start(p, s.b, s.c, s.dc, n0 + i) : 0.f;
        P[i] = 1.f;
        o[i] = 0.f;
    }
    const float skip = p.D ? p.D[s.dc] : 0.f, bias = p.bias ? p.bias[s.dc] : 0.f;
    const bool withZ = (outputs || grads) && p.z;
    constexpr bool needC = outputs || grads;
    float dtSum = 0.f;
    const int tiles = (s.t1 - s.t0 + FT - 1) / FT;
    auto issue = [&](int j)
    {
        if (j < tiles) issue_tile(p, s.b, s.t0 + j * FT, s.t1, cpb, np, withZ, grads, SEL, needC, slabs, smem + (j % STAGES) * slot);
        else cp_async_commit();   // an empty group keeps the wait counts uniform
    };
    // PRE: the channel of the (step, channel) items a thread computes is the same for every tile (blockDim is a multiple of cpb)
    const float preBias = PRE && p.bias ? p.bias[min(blockIdx.x * cpb + (int)(threadIdx.x & (cpb - 1)), p.Dch - 1)] : 0.f;
    // block-wide preparation of tile j (its copies complete and visible): rows to F32, dt and gate
    auto prepare = [&](int j)
    {
        if (j >= tiles) return;
        const T* cur = smem + (j % STAGES) * slot;
        if constexpr (widen)
        {
            const T* raw = cur + slabs * FT * cpb;
            float* dst = rowsF + (j & 1) * 2 * FT * np;
            for (int k = threadIdx.x; k < (needC ? 2 : 1) * FT * np; k += SCAN_FWD_BLOCK) dst[k] = to_f32(raw[k]);
        }
        if constexpr (PRE)
        {
            float* pdt = preBuf + (j & 1) * 2 * FT * cpb;
            for (int k = threadIdx.x; k < FT * cpb; k += SCAN_FWD_BLOCK)
            {
                pdt[k] = step_dt(to_f32(cur[FT * cpb + k]) + preBias, p.softplus);
                if (outputs && withZ) pdt[FT * cpb + k] = step_silu(to_f32(cur[2 * FT * cpb + k]));
            }
        }
    };
    issue(0);
    if (ahead)
    {
        issue(1);
        cp_async_wait_one();
        __syncthreads();
        prepare(0);
    }
    for (int j = 0; j < tiles; j++)
    {
        cp_async_wait_all();   // tile j (tile j + 1 when ahead) has arrived
        __syncthreads();
        if (ahead)
        {
            issue(j + 2);
            prepare(j + 1);
        }
        else issue(j + 1);
        const int tt = s.t0 + j * FT, steps = min(FT, s.t1 - tt);
        T* cur = smem + (j % STAGES) * slot;
        T* su = cur;
        const T *sd = cur + FT * cpb, *sz = cur + 2 * FT * cpb, *so = cur + 3 * FT * cpb;
        const float* sB = widen ? rowsF + (j & 1) * 2 * FT * np : reinterpret_cast<const float*>(cur + slabs * FT * cpb);
        const float* sC = sB + FT * np;
        const float* pdt = preBuf + (j & 1) * 2 * FT * cpb;
        auto step = [&](int k)
        {
            const int at = k * cpb + chl;
            const float uu = to_f32(su[at]);
            const float dt = PRE ? pdt[at] : step_dt(to_f32(sd[at]) + bias, p.softplus), dtu = dt * uu;
            if (!outputs) dtSum += dt;
            float bn[NS], cn[NS];
            if (SEL)
            {
                load_row<NS>(sB + k * np + n0, bn);
                if (needC) load_row<NS>(sC + k * np + n0, cn);
            }
            float dy = 0.f;
            if (grads) dy = withZ ? to_f32(so[at]) * step_silu(to_f32(sz[at])) : to_f32(so[at]);
            float y0 = 0.f, y1 = 0.f;
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                const float a = fast_exp2(dt * a2[i]);
                h[i] = fmaf(a, h[i], dtu * (SEL ? bn[i] : bv[i]));
                const float c_ = SEL ? cn[i] : cv[i];
                if (outputs)
                {
                    if (i & 1) y1 = fmaf(c_, h[i], y1);
                    else y0 = fmaf(c_, h[i], y0);
                }
                if (grads)
                {
                    P[i] *= a;
                    o[i] = fmaf(P[i], c_ * dy, o[i]);
                }
            }
            if (outputs)
            {
                float yv = fmaf(skip, uu, TPC == 1 ? y0 + y1 : channel_sum(y0 + y1, tpc));
                if (withZ) yv *= PRE ? pdt[FT * cpb + at] : step_silu(to_f32(sz[at]));
                // over this channel's u of step k, read above (by every lane of the channel: hence the __syncwarp when TPC > 1)
                if (TPC != 1) __syncwarp();
                if (TPC == 1 || s.sub == 0) su[at] = from_f32<T>(yv);
            }
        };
        if (steps == FT)
        {
            #pragma unroll
            for (int k = 0; k < FT; k++) step(k);
        }
        else
        {
            #pragma unroll 1
            for (int k = 0; k < steps; k++) step(k);
        }
        if (outputs)
        {
            __syncwarp();
            store_tile_y<T, TO>(p, su, s.b, tt, steps, cpb, tpc);
        }
    }
    if (!s.active) return;
    if (!outputs)
    {
        i64 at = (((i64)s.b * p.chunks + s.c) * p.Dch + s.d) * N;
        #pragma unroll
        for (int i = 0; i < NS; i++)
            if (n0 + i < N)
            {
                p.carryH[at + n0 + i] = h[i];
                if (grads) p.carryG[at + n0 + i] = o[i];
            }
        if (s.sub == 0) p.sumDt[((i64)s.b * p.chunks + s.c) * p.Dch + s.d] = dtSum;
    }
    else if (p.last && s.c == p.chunks - 1)
    {
        #pragma unroll
        for (int i = 0; i < NS; i++) if (n0 + i < N) p.last[((i64)s.b * p.Dch + s.d) * N + n0 + i] = h[i];
    }
}

// scan_forward: phase 0 on chunks 0 … chunks−2 (grid.y = chunks − 1), phase 1 on every chunk (both phases compiled into
// one kernel, chosen once per launch); scan_prepare (phase 2, for the backward): every chunk.
// Names: _tpcx = lanes per channel at run time (without it: one lane per channel); the element type last:
// (none) float, _bf16, _f16; _obf16: F32 inputs, y written in BF16 (for BF16 products: out_proj's operand, rounded once
// at the store instead of by a pass over an F32 y). Registers: selective at most 72 (7 blocks of 128 per SM; unbounded,
// the unrolled tile takes ~190; a 64-register cap for 8 blocks measured 1–3% slower), time-invariant (B, C in registers
// too) and scan_prepare at most 128 (4 blocks).
#define SCAN_FORWARD_KERNEL(NAME, NS, TPC, SEL, T, TO, MINB)                                                                    \
    extern "C" __global__ void __launch_bounds__(SCAN_FWD_BLOCK, MINB) NAME(ScanParams p, int phase)                           \
    {                                                                                                                          \
        if (phase == 0) scan_forward_impl<NS, TPC, SEL, 0, T, false, TO>(p, blockIdx.y);                                       \
        else scan_forward_impl<NS, TPC, SEL, 1, T, false, TO>(p, blockIdx.y);                                                  \
    }
#define SCAN_FORWARD_OUT(NS, T, TO, SUFFIX)                                                                                    \
    SCAN_FORWARD_KERNEL(scan_forward_ns##NS##_sel##SUFFIX, NS, 1, true, T, TO, 7)                                              \
    SCAN_FORWARD_KERNEL(scan_forward_ns##NS##_lti##SUFFIX, NS, 1, false, T, TO, 4)                                             \
    SCAN_FORWARD_KERNEL(scan_forward_ns##NS##_tpcx_sel##SUFFIX, NS, 0, true, T, TO, 7)                                         \
    SCAN_FORWARD_KERNEL(scan_forward_ns##NS##_tpcx_lti##SUFFIX, NS, 0, false, T, TO, 4)
#define SCAN_FORWARD(NS, T, SUFFIX)                                                                                            \
    SCAN_FORWARD_OUT(NS, T, T, SUFFIX)                                                                                         \
    extern "C" __global__ void __launch_bounds__(SCAN_FWD_BLOCK, 4) scan_prepare_ns##NS##_sel##SUFFIX(ScanParams p) { scan_forward_impl<NS, 1, true, 2, T>(p, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(SCAN_FWD_BLOCK, 4) scan_prepare_ns##NS##_lti##SUFFIX(ScanParams p) { scan_forward_impl<NS, 1, false, 2, T>(p, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(SCAN_FWD_BLOCK, 4) scan_prepare_ns##NS##_tpcx_sel##SUFFIX(ScanParams p) { scan_forward_impl<NS, 0, true, 2, T>(p, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(SCAN_FWD_BLOCK, 4) scan_prepare_ns##NS##_tpcx_lti##SUFFIX(ScanParams p) { scan_forward_impl<NS, 0, false, 2, T>(p, blockIdx.y); }

// ---- forward, time-parallel lanes: one pass over L ----
// scan_forward_lanes*: no chunks and no carries, so one ex2 per state and step (the chunked kernels run phase 0 and
// phase 1 over most steps: ~2). Selective, N = 16. A warp holds 4 channels × 8 segments (lane = c·8 + seg); a tile is
// LT = 64 steps, and lane (c, seg) owns steps seg·8 … seg·8 + 7 of its channel. For each state n the lane folds its 8
// steps into (P, h̃) = (Π a_i, the segment's end state started from zero); a 3-level shuffle scan over the channel's 8
// segments ((P₁, h₁) then (P₂, h₂) = (P₁P₂, P₂h₁ + h₂)) and the state carried in from the previous tile give each segment
// its start state; a second sweep over the 8 steps in registers gives h_i = a_i·h_{i−1} + w_i and y_i += C_i[n]·h_i.
// dt, dt·u and silu(z) are computed once per (step, channel), by the lane that owns it.
// Shared memory: two slots of u, Δ, z [LT, 32 channels] of T (16-byte units XOR-swizzled by the step's segment, so that
// the lanes' column reads meet no bank conflict), one of the raw B, C rows [LT, 16] of T (each thread widens the units
// it copied itself, so no barrier waits for them), B, C as F32 [2 slots][2][16][8 segments][8] for the lanes' 16-byte
// reads, A·log2 e [32, 16]. One barrier per tile: tile j + 1 is copied while tile j is computed. y is staged over the
// lane's own u and stored by the warp (its 4 channels of every step: 16 bytes a row for F32).
#define LT 64                // steps per tile (8 segments of 8)
#define LCB 32               // channels per block (8 warps of 4)
#define LN 16                // states
#define LANES_BLOCK 256

// position of (step, ch) in a [LT, LCB] slab of T: 16-byte units swizzled by the step's segment
template <typename T>
__device__ __forceinline__ int lanes_pos(int step, int ch)
{
    constexpr int W = 16 / sizeof(T), U = LCB / W;
    return step * LCB + (((ch / W) ^ (step >> 3)) & (U - 1)) * W + ch % W;
}
// position of step i (0 … 7) of segment seg in a row [8 segments][8] of the F32 B, C buffer: the two 16-byte halves
// swapped for segments 4 … 7, so that 8 lanes' 16-byte reads fall in 8 different bank quads
__device__ __forceinline__ int lanes_row_pos(int seg, int i) { return seg * 8 + ((((i >> 2) ^ (seg >> 2)) & 1) << 2) + (i & 3); }

template <typename T, typename TO>
__device__ __forceinline__ void scan_forward_lanes_impl(const ScanParams& p)
{
    extern __shared__ float4 smem4[];
    constexpr int W = 16 / sizeof(T), U = LCB / W, SLAB = LT * LCB;
    constexpr int RPP = LANES_BLOCK / U;              // slab rows copied per pass of the block
    constexpr int RU = LT * LN / W;                    // 16-byte units of one array's rows
    constexpr int ROW_UNITS = 2 * RU / LANES_BLOCK;    // B, C units per thread
    const int L = p.L, D = p.Dch, b = blockIdx.z, d0 = blockIdx.x * LCB;
    const int lane = threadIdx.x & 31, c = lane >> 3, seg = lane & 7, warp = threadIdx.x >> 5, ch = warp * 4 + c;
    const int d = d0 + ch, dc = min(d, D - 1);
    const bool withZ = p.z != nullptr;
    T* slots = reinterpret_cast<T*>(smem4);                      // [2][3][LT·LCB]
    T* raw = slots + 2 * 3 * SLAB;                               // [2][LT·LN]
    float* rowsF = reinterpret_cast<float*>(raw + 2 * LT * LN);  // [2][2][LN][64]
    float* sA = rowsF + 2 * 2 * LN * 64;                         // [LCB][LN]
    for (int k = threadIdx.x; k < LCB * LN; k += LANES_BLOCK) sA[k] = p.A[(i64)min(d0 + k / LN, D - 1) * LN + k % LN] * LOG2E;
    const T *u = reinterpret_cast<const T*>(p.u), *delta = reinterpret_cast<const T*>(p.delta), *z = reinterpret_cast<const T*>(p.z);
    const T *gB = reinterpret_cast<const T*>(p.B), *gC = reinterpret_cast<const T*>(p.C);
    const unsigned long long seqAt = (unsigned long long)u | (unsigned long long)delta | (withZ ? (unsigned long long)z : 0ull);
    const bool wide = D % W == 0 && seqAt % 16 == 0;
    const bool wideRows = (((unsigned long long)gB | (unsigned long long)gC) % 16) == 0;
    const int tiles = (L + LT - 1) / LT;
    // this thread's copy units: slab rows r0 + RPP·k, column unit un; B, C units rk (array k / (RU / LANES_BLOCK) …)
    const int un = threadIdx.x % U, r0 = threadIdx.x / U;
    // tile j's u, Δ, z into slot j % 2 (cp.async of 16-byte units, else plain loads) and its B, C rows into raw
    auto issue = [&](int j)
    {
        const int t0 = j * LT;
        T* slot = slots + (j & 1) * 3 * SLAB;
        if (wide)
        {
            const int dd = d0 + un * W;
            #pragma unroll
            for (int s = 0; s < 3; s++)
            {
                if (s == 2 && !withZ) break;
                const T* src = s == 0 ? u : s == 1 ? delta : z;
                #pragma unroll
                for (int r = r0; r < LT; r += RPP)
                {
                    const bool ok = t0 + r < L && dd < D;
                    cp_async16(slot + s * SLAB + lanes_pos<T>(r, un * W), src + (ok ? ((i64)b * L + t0 + r) * D + dd : 0), ok);
                }
            }
        }
        else
            for (int k = threadIdx.x; k < (withZ ? 3 : 2) * SLAB; k += LANES_BLOCK)
            {
                const int s = k / SLAB, r = (k / LCB) % LT, cc = k % LCB, t = t0 + r, dd = d0 + cc;
                const T* src = s == 0 ? u : s == 1 ? delta : z;
                slot[s * SLAB + lanes_pos<T>(r, cc)] = t < L && dd < D ? src[((i64)b * L + t) * D + dd] : T{};
            }
        if (wideRows)
        {
            #pragma unroll
            for (int q = 0; q < ROW_UNITS; q++)
            {
                const int k = threadIdx.x + q * LANES_BLOCK, s = k / RU, e = (k % RU) * W, t = t0 + e / LN;
                const bool ok = t < L;
                cp_async16(raw + s * LT * LN + e, (s == 0 ? gB : gC) + (ok ? ((i64)b * L + t0) * LN + e : 0), ok);
            }
        }
        cp_async_commit();
    };
    // tile j's B, C rows as F32 into rowsF[j % 2]: the units this thread copied (or, without 16-byte copies, loaded now)
    auto widen_rows = [&](int j)
    {
        float* dst = rowsF + (j & 1) * 2 * LN * 64;
        if (wideRows)
        {
            #pragma unroll
            for (int q = 0; q < ROW_UNITS; q++)
            {
                const int k = threadIdx.x + q * LANES_BLOCK, s = k / RU, e = (k % RU) * W, r = e / LN, n0 = e % LN;
                #pragma unroll
                for (int m = 0; m < W; m++) dst[(s * LN + n0 + m) * 64 + lanes_row_pos(r >> 3, r & 7)] = to_f32(raw[s * LT * LN + e + m]);
            }
        }
        else
            for (int k = threadIdx.x; k < 2 * LT * LN; k += LANES_BLOCK)
            {
                const int s = k / (LT * LN), r = (k / LN) % LT, n = k % LN, t = j * LT + r;
                dst[(s * LN + n) * 64 + lanes_row_pos(r >> 3, r & 7)] = t < L ? to_f32((s == 0 ? gB : gC)[((i64)b * L + t) * LN + n]) : 0.f;
            }
    };
    const float skip = p.D ? p.D[dc] : 0.f, bias = p.bias ? p.bias[dc] : 0.f;
    float H[LN];
    #pragma unroll
    for (int n = 0; n < LN; n++) H[n] = p.h0 ? p.h0[((i64)b * D + dc) * LN + n] : 0.f;
    issue(0);
    cp_async_wait_all();
    widen_rows(0);
    __syncthreads();
    const int own = lanes_pos<T>(seg * 8, ch);   // the lane's step i sits at own + i·LCB
    const int sw = (seg >> 2) << 2;               // lanes_row_pos's swap of the halves
    for (int j = 0; j < tiles; j++)
    {
        if (j + 1 < tiles) issue(j + 1);
        const int t0 = j * LT;
        T* slot = slots + (j & 1) * 3 * SLAB;
        const float* rows = rowsF + (j & 1) * 2 * LN * 64 + seg * 8;
        float dt[8], dtu[8], y[8];
        #pragma unroll
        for (int i = 0; i < 8; i++)
        {
            const float uu = to_f32(slot[own + i * LCB]);
            dt[i] = t0 + seg * 8 + i < L ? step_dt(to_f32(slot[SLAB + own + i * LCB]) + bias, p.softplus) : 0.f;   // past L: a = 1, w = 0
            dtu[i] = dt[i] * uu;
            y[i] = skip * uu;
        }
        #pragma unroll
        for (int n = 0; n < LN; n++)
        {
            const float a2 = sA[ch * LN + n];
            const float4 b0 = *reinterpret_cast<const float4*>(rows + n * 64 + sw), b1 = *reinterpret_cast<const float4*>(rows + n * 64 + (4 ^ sw));
            const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
            float e[8], w[8];
            #pragma unroll
            for (int i = 0; i < 8; i++)
            {
                e[i] = fast_exp2(dt[i] * a2);
                w[i] = dtu[i] * bv[i];
            }
            float P = e[0], hl = w[0];
            #pragma unroll
            for (int i = 1; i < 8; i++)
            {
                hl = fmaf(e[i], hl, w[i]);
                P *= e[i];
            }
            #pragma unroll
            for (int off = 1; off < 8; off <<= 1)
            {
                const float Pu = __shfl_up_sync(FULL_MASK, P, off, 8), hu = __shfl_up_sync(FULL_MASK, hl, off, 8);
                if (seg >= off)
                {
                    hl = fmaf(P, hu, hl);
                    P *= Pu;
                }
            }
            const float incl = fmaf(P, H[n], hl), before = __shfl_up_sync(FULL_MASK, incl, 1, 8);
            float h = seg == 0 ? H[n] : before;
            H[n] = __shfl_sync(FULL_MASK, incl, 7, 8);
            const float4 c0 = *reinterpret_cast<const float4*>(rows + (LN + n) * 64 + sw), c1 = *reinterpret_cast<const float4*>(rows + (LN + n) * 64 + (4 ^ sw));
            const float cv[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
            #pragma unroll
            for (int i = 0; i < 8; i++)
            {
                h = fmaf(e[i], h, w[i]);
                y[i] = fmaf(cv[i], h, y[i]);
            }
        }
        // gate, then y over the lane's own u
        #pragma unroll
        for (int i = 0; i < 8; i++)
        {
            const float g = withZ ? step_silu(to_f32(slot[2 * SLAB + own + i * LCB])) : 1.f;
            slot[own + i * LCB] = from_f32<T>(y[i] * g);
        }
        __syncwarp();
        // the warp's 4 channels of every step of the tile (the 8 lanes of a quarter-warp take rows of 8 different segments)
        const int steps = min(LT, L - t0), dw = d0 + warp * 4;
        TO* gy = reinterpret_cast<TO*>(p.y) + ((i64)b * L + t0) * D + dw;
        const bool four = dw + 4 <= D && D % 4 == 0 && reinterpret_cast<unsigned long long>(p.y) % (4 * sizeof(TO)) == 0;
        #pragma unroll
        for (int pass = 0; pass < 2; pass++)
        {
            const int r = (lane & 7) * 8 + (lane >> 3) + 4 * pass;
            if (r >= steps) continue;
            const T* src = slot + lanes_pos<T>(r, warp * 4);   // 4 consecutive channels (a unit holds 4 or 8)
            float v[4];
            if constexpr (sizeof(T) == 4)
            {
                const float4 q = *reinterpret_cast<const float4*>(src);
                v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
            }
            else
            {
                const uint2 q = *reinterpret_cast<const uint2*>(src);
                unpack2(q.x, T{}, v[0], v[1]);
                unpack2(q.y, T{}, v[2], v[3]);
            }
            if (four)
            {
                if constexpr (sizeof(TO) == 4) *reinterpret_cast<float4*>(gy + (i64)r * D) = make_float4(v[0], v[1], v[2], v[3]);
                else
                {
                    auto two = [](float lo, float hi) { return (unsigned)from_f32<TO>(lo).v | ((unsigned)from_f32<TO>(hi).v << 16); };
                    *reinterpret_cast<uint2*>(gy + (i64)r * D) = make_uint2(two(v[0], v[1]), two(v[2], v[3]));
                }
            }
            else
                for (int k = 0; k < 4; k++)
                    if (dw + k < D) gy[(i64)r * D + k] = from_f32<TO>(v[k]);
        }
        if (j + 1 < tiles)
        {
            cp_async_wait_all();
            widen_rows(j + 1);
        }
        __syncthreads();
    }
    if (p.last && seg == 0 && d < D)
    {
        #pragma unroll
        for (int n = 0; n < LN; n++) p.last[((i64)b * D + d) * LN + n] = H[n];
    }
}
// Two register budgets: 3 blocks an SM (80 registers: NVRTC then runs the 16 states' chains one after another — exps,
// shuffles, exps, … — as session 20's kernel did) and _wide, 2 blocks an SM (128 registers: the next state's exps are
// issued among the current state's shuffles, so the chains overlap within a warp, with a third fewer warps).
#define SCAN_FORWARD_LANES(T, TO, SUFFIX) \
    extern "C" __global__ void __launch_bounds__(LANES_BLOCK, 3) scan_forward_lanes##SUFFIX(ScanParams p) { scan_forward_lanes_impl<T, TO>(p); } \
    extern "C" __global__ void __launch_bounds__(LANES_BLOCK, 2) scan_forward_lanes_wide##SUFFIX(ScanParams p) { scan_forward_lanes_impl<T, TO>(p); }

// Compiled in four groups (KERNEL_GROUP, common.cuh), one per element type, so that a run compiles only the kernels of
// its types (the whole file takes ~100 s, the forward's instantiations most of it): 1 F32, 2 BF16, 3 F16, 4 F32 inputs
// with BF16 outputs or gradients (_obf16, _gbf16). The backward's instantiations are below; the other kernels are in every group.
#define SCAN_FORWARD_SPLITS(T, SUFFIX) \
    SCAN_FORWARD(1, T, SUFFIX) SCAN_FORWARD(2, T, SUFFIX) SCAN_FORWARD(4, T, SUFFIX) SCAN_FORWARD(8, T, SUFFIX) SCAN_FORWARD(16, T, SUFFIX) \
    SCAN_FORWARD_LANES(T, T, SUFFIX)
#if KERNEL_GROUP_IS(1)
SCAN_FORWARD_SPLITS(float, )
#endif
#if KERNEL_GROUP_IS(2)
SCAN_FORWARD_SPLITS(bf16_bits, _bf16)
#endif
#if KERNEL_GROUP_IS(3)
SCAN_FORWARD_SPLITS(half_bits, _f16)
#endif
#if KERNEL_GROUP_IS(4)
SCAN_FORWARD_OUT(1, float, bf16_bits, _obf16) SCAN_FORWARD_OUT(2, float, bf16_bits, _obf16) SCAN_FORWARD_OUT(4, float, bf16_bits, _obf16)
SCAN_FORWARD_OUT(8, float, bf16_bits, _obf16) SCAN_FORWARD_OUT(16, float, bf16_bits, _obf16)
SCAN_FORWARD_LANES(float, bf16_bits, _obf16)
#endif

// H_c from h̃_c and S_c, one thread per (b, d, n); in place in carryH. The chunks are visited CB at a time with
// their loads issued together (the recurrence over chunks is serial: one memory round trip per CB chunks, not per chunk).
#define CB 8
__device__ __forceinline__ void carry_forward_one(const ScanParams& p, i64 i)
{
    const int s = (int)(i % p.N), d = (int)((i / p.N) % p.Dch);
    const i64 b = i / p.N / p.Dch, stride = (i64)p.Dch * p.N, first = (b * p.chunks * p.Dch + d) * p.N + s;
    const float* sums = p.sumDt + b * p.chunks * p.Dch + d;
    const float a2 = p.A[(i64)d * p.N + s] * LOG2E;
    float H = p.h0 ? p.h0[(b * p.Dch + d) * p.N + s] : 0.f;
    for (int c0 = 0; c0 < p.chunks - 1; c0 += CB)
    {
        float local[CB], sd[CB];
        #pragma unroll
        for (int j = 0; j < CB; j++)
        {
            const bool ok = c0 + j < p.chunks - 1;
            local[j] = ok ? p.carryH[first + (c0 + j) * stride] : 0.f;
            sd[j] = ok ? sums[(i64)(c0 + j) * p.Dch] : 0.f;
        }
        #pragma unroll
        for (int j = 0; j < CB; j++)
            if (c0 + j < p.chunks - 1)
            {
                p.carryH[first + (c0 + j) * stride] = H;
                H = fmaf(fast_exp2(a2 * sd[j]), H, local[j]);
            }
    }
    p.carryH[first + (i64)(p.chunks - 1) * stride] = H;
}

// E_c from õ_{c+1} and S_{c+1}, one thread per (b, d, n); in place in carryG (chunks last to first, CB at a time).
__device__ __forceinline__ void carry_backward_one(const ScanParams& p, i64 i)
{
    const int s = (int)(i % p.N), d = (int)((i / p.N) % p.Dch);
    const i64 b = i / p.N / p.Dch, stride = (i64)p.Dch * p.N, first = (b * p.chunks * p.Dch + d) * p.N + s;
    const float* sums = p.sumDt + b * p.chunks * p.Dch + d;
    const float a2 = p.A[(i64)d * p.N + s] * LOG2E;
    float E = 0.f;
    for (int c0 = p.chunks - 1; c0 >= 0; c0 -= CB)
    {
        float local[CB], sd[CB];
        #pragma unroll
        for (int j = 0; j < CB; j++)
        {
            const int c = c0 - j;
            local[j] = c > 0 ? p.carryG[first + c * stride] : 0.f;
            sd[j] = c >= 0 ? sums[(i64)c * p.Dch] : 0.f;
        }
        #pragma unroll
        for (int j = 0; j < CB; j++)
        {
            const int c = c0 - j;
            if (c < 0) break;
            p.carryG[first + c * stride] = E;
            E = c == p.chunks - 1 ? local[j] : fmaf(fast_exp2(a2 * sd[j]), E, local[j]);
        }
    }
}

extern "C" __global__ void scan_carry_forward(ScanParams p)
{
    GRID_STRIDE(i, (i64)p.batch * p.Dch * p.N) carry_forward_one(p, i);
}

// Both carries of the backward in one launch: blockIdx.y 0 gives H_c (carryH), 1 gives E_c (carryG).
extern "C" __global__ void scan_carries(ScanParams p)
{
    GRID_STRIDE(i, (i64)p.batch * p.Dch * p.N)
    {
        if (blockIdx.y == 0) carry_forward_one(p, i);
        else carry_backward_one(p, i);
    }
}

// ---- backward ----

// Sums v over the lanes that share this lane's sub (lane bits from TPC up), scattering the V sums over those lanes:
// each level halves the values a lane holds (it keeps one half, adds its partner's), until one is left; further
// levels plain-add (those lanes then hold duplicates: dup marks their bits). Lane ends with v[0 … R−1] = sums of
// value indices base … base + R − 1.
template <int V, int O, int TPC, int N0>
__device__ __forceinline__ void reduce_scatter(float (&v)[N0], int lane, int& base, int& dup)
{
    if constexpr (O >= TPC && O > 0)
    {
        if constexpr (V > 1)
        {
            constexpr int H = V / 2;
            const bool up = (lane & O) != 0;
            #pragma unroll
            for (int j = 0; j < H; j++)
            {
                float send = up ? v[j] : v[j + H];
                float keep = up ? v[j + H] : v[j];
                v[j] = keep + __shfl_xor_sync(FULL_MASK, send, O);
            }
            if (up) base += H;
            reduce_scatter<H, O / 2, TPC>(v, lane, base, dup);
        }
        else
        {
            v[0] += __shfl_xor_sync(FULL_MASK, v[0], O);
            dup |= O;
            reduce_scatter<1, O / 2, TPC>(v, lane, base, dup);
        }
    }
}

// Rows [r0, r0 + F) of the chunk (those before its end): the block's warps' dB_t, dC_t rows summed and added to dB, dC
// (one atomic per value and block). Barriers before (every warp has written the rows) and after (none writes them again
// before all are read).
__device__ void backward_flush(const ScanParams& p, const ScanLane& s, const float* wd, int r0, int F, int np)
{
    __syncthreads();
    const int rows = min(F, s.t1 - s.t0 - r0), width = 2 * np, warps = blockDim.x / 32, N = p.N;
    float* gB = p.dB + ((i64)s.b * p.L + s.t0 + r0) * N;
    float* gC = p.dC + ((i64)s.b * p.L + s.t0 + r0) * N;
    for (int k = threadIdx.x; k < rows * width; k += blockDim.x)
    {
        const int r = k / width, c = k - r * width, n = c < np ? c : c - np;
        if (n >= N) continue;
        float sum = 0.f;
        for (int w = 0; w < warps; w++) sum += wd[(w * F + r) * width + c];
        atomicAdd(&(c < np ? gB : gC)[r * N + n], sum);
    }
    __syncthreads();
}

// Shared memory: sB, sC [T, np] (selective), the warps' dB_t, dC_t rows [warps, F, 2·np] (selective; F = flushSubs · SUB),
// dt [T, channels of the block], checkpoints [T/SUB, blockDim, NS]. Pass 1 keeps dt, so pass 2 needs no softplus; σ(δ + bias) = 1 − e^−dt.
// PF: the next sub-block's u, Δ (pass 1) and u, dout, z (pass 2) are loaded into registers before the current one is
// computed, so their memory latency overlaps the arithmetic.
template <int NS, int TPC, bool SEL, int SUB, bool PF, typename T, typename TG = T>
__device__ void scan_backward_impl(const ScanParams& p)
{
    const T *u = reinterpret_cast<const T*>(p.u), *delta = reinterpret_cast<const T*>(p.delta), *z = reinterpret_cast<const T*>(p.z);
    const T* gout = reinterpret_cast<const T*>(p.dout);
    extern __shared__ float4 smem4[];
    float* smem = reinterpret_cast<float*>(smem4);
    ScanLane s = scan_lane(p, blockIdx.y, TPC, blockDim.x / TPC);
    const int N = p.N, n0 = s.sub * NS, TL = p.chunkLen, lane = threadIdx.x & 31, np = NS * TPC;
    const int tn = SEL ? TL * np : 0;
    const int cpb = blockDim.x / TPC, chl = threadIdx.x / TPC;
    // dB_t, dC_t: each warp writes its sums over its channels into rows of its own (no atomics), and every F steps the
    // block adds the warps' rows into the global sums
    const int FS = max(1, p.flushSubs), F = FS * SUB;
    float *sB = smem, *sC = sB + tn, *wd = sC + tn, *sdt = wd + (SEL ? (blockDim.x / 32) * F * 2 * np : 0), *ckpt = sdt + TL * cpb;
    float* wrows = wd + (threadIdx.x / 32) * F * 2 * np;

    float a2[NS], h[NS], g[NS], bv[NS], cv[NS], accA[NS], accB[NS], accC[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        i64 pn = (i64)s.dc * N + n0 + i;
        i64 cn = (((i64)s.b * p.chunks + s.c) * p.Dch + s.dc) * N + n0 + i;
        a2[i] = ok ? p.A[pn] * LOG2E : 0.f;
        bv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.B)[pn]) : 0.f;
        cv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.C)[pn]) : 0.f;
        h[i] = ok ? scan_start(p, s.b, s.c, s.dc, n0 + i) : 0.f;
        g[i] = ok && s.c < p.chunks - 1 ? p.carryG[cn] : 0.f;
        accA[i] = accB[i] = accC[i] = 0.f;
    }
    const float skip = p.D ? p.D[s.dc] : 0.f, bias = p.bias ? p.bias[s.dc] : 0.f;
    float accD = 0.f, accBias = 0.f;
    if (SEL)
    {
        stage_rows<T>(p, p.B, p.C, s.b, s.t0, TL, s.t1, np, sB, sC);
    }
    __syncthreads();

    // pass 1: the state before every sub-block (dt computed once per channel: lane sub takes steps sub, sub + TPC, …)
    constexpr int PER = SUB >= TPC ? SUB / TPC : 1;
    const int group = lane & ~(TPC - 1);
    const int subs = (s.t1 - s.t0 + SUB - 1) / SUB;
    // raw u and Δ of sub-block sb (this lane's Δ: steps sub, sub + TPC, …), kept as T until used so that a prefetch
    // does not wait for its loads to widen them
    auto fetch1 = [&](int sb, T (&uu)[SUB], T (&raw)[PER])
    {
        const int tb = s.t0 + sb * SUB, steps = min(SUB, s.t1 - tb);
        const i64 base = ((i64)s.b * p.L + tb) * p.Dch + s.dc;
        #pragma unroll
        for (int k = 0; k < SUB; k++) uu[k] = k < steps ? u[base + (i64)k * p.Dch] : T{};
        #pragma unroll
        for (int j = 0; j < PER; j++)
        {
            const int k = s.sub + j * TPC;
            raw[j] = k < steps ? delta[base + (i64)k * p.Dch] : T{};
        }
    };
    T nu[SUB], nraw[PER];
    if (PF && subs > 0) fetch1(0, nu, nraw);
    for (int sb = 0; sb < subs; sb++)
    {
        float* ck = ckpt + ((i64)sb * blockDim.x + threadIdx.x) * NS;
        #pragma unroll
        for (int i = 0; i < NS; i++) ck[i] = h[i];
        const int tb = s.t0 + sb * SUB, steps = min(SUB, s.t1 - tb);
        float uu[SUB], raw[PER], mine[PER];
        T tu[SUB], traw[PER];
        if (PF)
        {
            #pragma unroll
            for (int k = 0; k < SUB; k++) tu[k] = nu[k];
            #pragma unroll
            for (int j = 0; j < PER; j++) traw[j] = nraw[j];
            if (sb + 1 < subs) fetch1(sb + 1, nu, nraw);
        }
        else fetch1(sb, tu, traw);
        #pragma unroll
        for (int k = 0; k < SUB; k++) uu[k] = to_f32(tu[k]);
        #pragma unroll
        for (int j = 0; j < PER; j++) raw[j] = to_f32(traw[j]);
        #pragma unroll
        for (int j = 0; j < PER; j++)
        {
            const int k = s.sub + j * TPC;
            mine[j] = k < steps ? scan_dt(raw[j] + bias, p.softplus) : 0.f;
            if (k < steps) sdt[(tb - s.t0 + k) * cpb + chl] = mine[j];
        }
        #pragma unroll
        for (int k = 0; k < SUB; k++)
        {
            if (k >= steps) break;
            float dt = __shfl_sync(FULL_MASK, mine[k / TPC], group | (k % TPC)), dtu = dt * uu[k];
            float bn[NS];
            if (SEL) load_row<NS>(sB + (tb - s.t0 + k) * np + n0, bn);
            #pragma unroll
            for (int i = 0; i < NS; i++) h[i] = fmaf(fast_exp2(dt * a2[i]), h[i], dtu * (SEL ? bn[i] : bv[i]));
        }
    }

    __syncwarp();

    // pass 2: sub-blocks last to first
    // u, dout and z of sub-block sb (dout, z: this lane's steps), raw; full: sb has SUB steps (no step past the chunk)
    auto fetch2 = [&](const bool full, int sb, T (&us)[SUB], T (&douts)[PER], T (&zs)[PER])
    {
        const int tb = s.t0 + sb * SUB, steps = full ? SUB : min(SUB, s.t1 - tb);
        const i64 base = ((i64)s.b * p.L + tb) * p.Dch + s.dc;
        #pragma unroll
        for (int k = 0; k < SUB; k++) us[k] = k < steps ? u[base + (i64)k * p.Dch] : T{};
        #pragma unroll
        for (int j = 0; j < PER; j++)
        {
            const int k = s.sub + j * TPC;
            douts[j] = k < steps ? gout[base + (i64)k * p.Dch] : T{};
            zs[j] = k < steps && z ? z[base + (i64)k * p.Dch] : T{};
        }
    };
    T nus[SUB], ndo[PER], nzs[PER];
    if (PF && subs > 0) fetch2(false, subs - 1, nus, ndo, nzs);
    int inGroup = (subs - 1) % FS;   // = sb % FS, counted down with sb
    // TPC ≥ 4: lanes 0, 1, 2 of a channel store du (T), dΔ, dz (TG) (null: nothing to store)
    void* const mine = !s.active || s.sub > 2 ? nullptr : s.sub == 0 ? (void*)p.du : s.sub == 1 ? (void*)p.ddelta : (void*)p.dz;
    // one sub-block; FULL: all SUB steps are in the chunk (every sub-block but perhaps the last), so the step loops need no
    // bounds checks or clamps
    auto sub_block = [&](const bool FULL, int sb)
    {
        const int tb = s.t0 + sb * SUB, steps = FULL ? SUB : min(SUB, s.t1 - tb);
        const i64 base = ((i64)s.b * p.L + tb) * p.Dch + s.dc;
        float h0[NS], hs[SUB][NS], as[SUB][NS], dts[SUB], us[SUB], dys[SUB], dzs[SUB], sigs[SUB];
        T tus[SUB], douts[PER], zs[PER];
        if (PF)
        {
            #pragma unroll
            for (int k = 0; k < SUB; k++) tus[k] = nus[k];
            #pragma unroll
            for (int j = 0; j < PER; j++) { douts[j] = ndo[j]; zs[j] = nzs[j]; }
            if (sb > 0) fetch2(true, sb - 1, nus, ndo, nzs);   // sub-blocks before the last are full
        }
        else fetch2(FULL, sb, tus, douts, zs);
        #pragma unroll
        for (int k = 0; k < SUB; k++) us[k] = to_f32(tus[k]);
        #pragma unroll
        for (int k = 0; k < SUB; k++) dts[k] = sdt[(FULL ? tb + k - s.t0 : min(tb + k - s.t0, s.t1 - 1 - s.t0)) * cpb + chl];
        // dy = dout·silu(z), the dz factor dout·silu'(z) and σ(δ + bias) = 1 − e^−dt: each lane of the channel computes
        // them for its own steps, then they are shared with shuffles
        float myDy[PER], myDz[PER], mySig[PER];
        #pragma unroll
        for (int j = 0; j < PER; j++)
        {
            const int k = s.sub + j * TPC;
            const float dout = to_f32(douts[j]), zz = to_f32(zs[j]);
            const int r = tb + min(k, SUB - 1) - s.t0;
            const float dt = sdt[(FULL ? r : min(r, s.t1 - 1 - s.t0)) * cpb + chl];
            myDy[j] = p.z ? dout * fast_silu(zz) : dout;
            myDz[j] = p.z ? dout * fast_silu_grad(zz) : 0.f;
            mySig[j] = dt < 0.01f ? dt * (1.f - dt * (0.5f - dt * (1.f / 6.f))) : 1.f - __expf(-dt);
        }
        #pragma unroll
        for (int k = 0; k < SUB; k++)
        {
            const int src = group | (k % TPC);
            dys[k] = __shfl_sync(FULL_MASK, myDy[k / TPC], src);
            dzs[k] = __shfl_sync(FULL_MASK, myDz[k / TPC], src);
            sigs[k] = __shfl_sync(FULL_MASK, mySig[k / TPC], src);
        }
        const float* ck = ckpt + ((i64)sb * blockDim.x + threadIdx.x) * NS;
        #pragma unroll
        for (int i = 0; i < NS; i++) h0[i] = ck[i];
        float* wsub = wrows + inGroup * SUB * 2 * np;   // this sub-block's first row of the warp's dB, dC rows
        #pragma unroll
        for (int k = 0; k < SUB; k++)
        {
            const int r = FULL ? tb + k - s.t0 : min(tb + k, s.t1 - 1) - s.t0;
            float dtu = dts[k] * us[k], bn[NS];
            if (SEL) load_row<NS>(sB + r * np + n0, bn);
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                float prev = k == 0 ? h0[i] : hs[k - 1][i];
                as[k][i] = fast_exp2(dts[k] * a2[i]);
                hs[k][i] = fmaf(as[k][i], prev, dtu * (SEL ? bn[i] : bv[i]));
            }
        }
        #pragma unroll
        for (int k = SUB - 1; k >= 0; k--)
        {
            if (k >= steps) continue;
            const int r = tb + k - s.t0;
            const i64 off = base + (i64)k * p.Dch;
            const float uu = us[k], dt = dts[k], dtu = dt * uu, dy = dys[k];
            float bn[NS], cn[NS];
            if (SEL)
            {
                load_row<NS>(sB + r * np + n0, bn);
                load_row<NS>(sC + r * np + n0, cn);
            }
            float yv = 0.f, sumB = 0.f, ddtA = 0.f;
            float vals[2 * NS];                                  // dB_t (first NS), dC_t (last NS)
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                float b_ = SEL ? bn[i] : bv[i], c_ = SEL ? cn[i] : cv[i];
                float hc = hs[k][i], hp = k == 0 ? h0[i] : hs[k - 1][i];
                yv = fmaf(c_, hc, yv);
                float gi = fmaf(c_, dy, g[i]);
                vals[NS + i] = dy * hc;
                vals[i] = gi * dtu;
                sumB = fmaf(gi, b_, sumB);
                float gah = gi * as[k][i] * hp;
                accA[i] = fmaf(gah, dt, accA[i]);
                ddtA = fmaf(gah, a2[i], ddtA);
                g[i] = gi * as[k][i];
            }
            accD = fmaf(dy, uu, accD);
            if constexpr (TPC >= 4)
            {
                // du − D·dy, ∂loss/∂dt and y − D·u are linear in the lane sums: each is summed into the lane that stores
                // it (lanes 0, 1, 2 of the channel store du, dΔ, dz: one store a step); lane 1 sums dbias
                const float q = channel_scatter3(dt * sumB, fmaf(ddtA, LN2, uu * sumB), yv, lane, TPC);
                const float v = s.sub == 0 ? fmaf(skip, dy, q) : s.sub == 1 ? (p.softplus ? q * sigs[k] : q) : dzs[k] * fmaf(skip, uu, q);
                if (s.sub == 1) accBias += v;
                if (mine)
                {
                    if (sizeof(T) == sizeof(TG) || s.sub == 0) reinterpret_cast<T*>(mine)[off] = from_f32<T>(v);
                    else reinterpret_cast<TG*>(mine)[off] = from_f32<TG>(v);
                }
            }
            else
            {
                sumB = channel_sum(sumB, TPC);
                ddtA = channel_sum(ddtA, TPC);
                float ddt = fmaf(ddtA, LN2, uu * sumB);
                float du = fmaf(skip, dy, dt * sumB);
                float dd = p.softplus ? ddt * sigs[k] : ddt;
                accBias += dd;
                if (p.dz) yv = channel_sum(yv, TPC);
                if (s.sub == 0 && s.active)
                {
                    reinterpret_cast<T*>(p.du)[off] = from_f32<T>(du);
                    reinterpret_cast<TG*>(p.ddelta)[off] = from_f32<TG>(dd);
                    if (p.dz) reinterpret_cast<TG*>(p.dz)[off] = from_f32<TG>(dzs[k] * fmaf(skip, uu, yv));
                }
            }
            if (SEL)
            {
                // this step's dB_t, dC_t summed over the warp's channels, scattered over its lanes, written to the warp's row
                #pragma unroll
                for (int i = 0; i < 2 * NS; i++) vals[i] = s.active ? vals[i] : 0.f;
                int first = 0, dup = 0;
                reduce_scatter<2 * NS, 16, TPC>(vals, lane, first, dup);
                constexpr int R = 2 * NS > 32 / TPC ? 2 * NS / (32 / TPC) : 1;
                if ((lane & dup) == 0)
                {
                    float* row = wsub + k * 2 * np + n0;
                    #pragma unroll
                    for (int j = 0; j < R; j++)
                    {
                        int idx = first + j;
                        row[idx < NS ? idx : np + idx - NS] = vals[j];
                    }
                }
            }
            else
            {
                #pragma unroll
                for (int i = 0; i < NS; i++) { accB[i] += vals[i]; accC[i] += vals[NS + i]; }
            }
        }
        if (SEL && inGroup == 0) backward_flush(p, s, wd, sb * SUB, F, np);
        inGroup = inGroup == 0 ? FS - 1 : inGroup - 1;
    };
    for (int sb = subs - 1; sb >= 0; sb--)
    {
        if (s.t1 - s.t0 - sb * SUB >= SUB) sub_block(true, sb);   // two inlined copies, one without the checks
        else sub_block(false, sb);
    }

    if (s.active)
    {
        #pragma unroll
        for (int i = 0; i < NS; i++)
        {
            if (n0 + i >= N) continue;
            i64 pn = (i64)s.d * N + n0 + i;
            atomicAdd(&p.dA[pn], accA[i]);
            if (!SEL) { atomicAdd(&p.dB[pn], accB[i]); atomicAdd(&p.dC[pn], accC[i]); }
        }
        constexpr int biasLane = TPC >= 4 ? 1 : 0;   // the lane that summed dΔ (above)
        if (s.sub == 0 && p.dD) atomicAdd(&p.dD[s.d], accD);
        if (s.sub == biasLane && p.dbias) atomicAdd(&p.dbias[s.d], accBias);
        if (p.dh0 && s.c == 0)   // g is now ∂loss/∂h_{-1}: chunk 0 started from E_0, the gradient of the later chunks
        {
            #pragma unroll
            for (int i = 0; i < NS; i++)
                if (n0 + i < N) p.dh0[((i64)s.b * p.Dch + s.d) * N + n0 + i] = g[i];
        }
    }
}

// _pf: with prefetch, at most 128 registers (two 256-thread blocks per SM); bf16 and f16 (_bf16, _f16) only with prefetch.
// _gbf16: F32 inputs, dΔ and dz written in BF16 (for BF16 products: the operands of dt_proj's and in_proj's backward
// products, rounded at the store instead of by a pass). dB and dC are F32 (summed with atomics; scan_to_bf16 /
// scan_to_f16 convert them afterwards).
#define SCAN_BACKWARD_PF(NS, TPC, T, TG, SUFFIX)                                                                               \
    extern "C" __global__ void __launch_bounds__(256, 2) scan_backward_ns##NS##_tpc##TPC##_sel_pf##SUFFIX(ScanParams p) { scan_backward_impl<NS, TPC, true, 4, true, T, TG>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 2) scan_backward_ns##NS##_tpc##TPC##_lti_pf##SUFFIX(ScanParams p) { scan_backward_impl<NS, TPC, false, 4, true, T, TG>(p); }
// every (states per thread, lanes per channel) split of ScanSplit(N, 4), in the groups of the forward's
#define SCAN_BACKWARD(T, TG, SUFFIX)                                                                                           \
    SCAN_BACKWARD_PF(1, 1, T, TG, SUFFIX) SCAN_BACKWARD_PF(2, 1, T, TG, SUFFIX) SCAN_BACKWARD_PF(4, 1, T, TG, SUFFIX)          \
    SCAN_BACKWARD_PF(4, 2, T, TG, SUFFIX) SCAN_BACKWARD_PF(4, 4, T, TG, SUFFIX) SCAN_BACKWARD_PF(4, 8, T, TG, SUFFIX)          \
    SCAN_BACKWARD_PF(4, 16, T, TG, SUFFIX) SCAN_BACKWARD_PF(4, 32, T, TG, SUFFIX)
#if KERNEL_GROUP_IS(1)
SCAN_BACKWARD(float, float, )
#endif
#if KERNEL_GROUP_IS(2)
SCAN_BACKWARD(bf16_bits, bf16_bits, _bf16)
#endif
#if KERNEL_GROUP_IS(3)
SCAN_BACKWARD(half_bits, half_bits, _f16)
#endif
#if KERNEL_GROUP_IS(4)
SCAN_BACKWARD(float, bf16_bits, _gbf16)
#endif

// dst = src rounded to the element type (the backward's F32 dB, dC for bf16 / f16 inputs)
extern "C" __global__ void scan_to_bf16(const float* src, bf16_bits* dst, i64 n) { GRID_STRIDE(i, n) dst[i] = from_f32<bf16_bits>(src[i]); }
extern "C" __global__ void scan_to_f16(const float* src, half_bits* dst, i64 n) { GRID_STRIDE(i, n) dst[i] = from_f32<half_bits>(src[i]); }

// The recurrent step for decoding (IBackend.SelectiveScanStep), one thread per (stream, channel):
//   dt = softplus(δ + bias);  h ← exp(dt·A)·h + dt·B·u;  y = ⟨C, h⟩ + D·u;  y ·= silu(z)
extern "C" __global__ void scan_step(const float* u, const float* delta, const float* A, const float* B, const float* C, const float* Dskip,
    const float* z, const float* bias, int softplus, int selective, float* state, float* y, int batch, int D, int N)
{
    i64 n = (i64)batch * D;
    GRID_STRIDE(i, n)
    {
        i64 b = i / D;
        int c = (int)(i % D);
        float dt = delta[i] + (bias ? bias[c] : 0.f);
        if (softplus) dt = softplus_f(dt);
        float ui = u[i], dtu = dt * ui;
        float* h = state + i * N;
        const float* a = A + (i64)c * N;
        const float* bn = selective ? B + b * N : B + (i64)c * N;
        const float* cn = selective ? C + b * N : C + (i64)c * N;
        float acc = 0.f;
        for (int s = 0; s < N; s++)
        {
            float hv = fmaf(expf(dt * a[s]), h[s], dtu * bn[s]);
            h[s] = hv;
            acc = fmaf(hv, cn[s], acc);
        }
        if (Dskip) acc = fmaf(Dskip[c], ui, acc);
        if (z) acc *= silu_f(z[i]);
        y[i] = acc;
    }
}
