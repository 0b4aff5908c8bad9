// The fused Mamba-1 decoding step (Ops/MambaStep.cs has the math; CpuBackend.MambaStep.cs is the reference twin).
// One layer, h (batch, d) → h + out_proj(mixer(RMSNorm(h))), in four kernels, each reading its weights once:
//   1. in_proj:  every block recomputes x̂ = RMSNorm(h)·w (d values per stream), then xz = x̂·W_inᵀ, one warp per row;
//                the warp of row c < e also computes u_c = silu(conv(conv_state_c, x_c) + b_c)
//   2. x_proj:   dbc = u·W_xᵀ, one warp per row
//   3. scan:     16 lanes per (stream, channel): Δ = softplus(dbc[:r]·W_dt[c] + b_dt), h_s = e^{ΔA_s} h_s + Δ B_s u,
//                y = (Σ_s C_s h_s + D u)·silu(z); lane 0 shifts the conv state (kernel 1 only reads it)
//   4. out_proj: h' = h + y·W_outᵀ (+ b), one warp per row
// The head: x̂ = RMSNorm(h)·w_f, logits = x̂·W_headᵀ, each block's arg-max per stream, then the arg-max of the blocks'
// (finish_arg_max: −1 for a stream whose logits hold NaN or ±∞, so the host can name the bad logit), by the head's last
// block to finish (mamba_step_head, and mamba_step_head1 for one stream) or, beyond 8 streams, mamba_step_arg_max_finish.
// Weights are F32, BF16 or F16 (KIND 0, 1, 2), read 16 bytes at a time where the rows allow (row length a multiple
// of 8, 16-byte aligned: `vec`) and widened in registers; activations, the state and every sum are F32.
// Every kernel is launched with programmatic dependent launch where the GPU has it (sm_90, CudaBackend.LaunchEarly): it
// may start while the kernel before it still runs, loads its first weights (which nothing writes) into registers, then
// waits in grid_wait() for the previous kernels' results; it writes nothing before that wait.
// mamba_step_layer runs the four as phases of one persistent kernel (every block resident at once, grid_barrier between
// phases), with the weights of phases 2–4 asked into L2 while phase 1 streams W_in (CudaBackend.PersistentLayerStep; off
// by default: slower than the four kernels so far, see docs/cuda-kernel-notes.md).
// Kernels 1, 2, 4 and the head take at most MAX_ROWS streams (x̂, u or y of all of them in shared memory); larger
// batches use cuBLAS for those products and mamba_step_conv for u (CudaBackend.MambaStep.cs); with 2-byte weights the
// products' inputs are written in the weights' type by the kernels that make them (rmsnorm_forward_bf16/f16, the conv's
// copy of u, the scan's y), rounded from the same F32 values, so no conversion pass runs before a product.

#define MAX_ROWS 8
#define UNITS 6      // 8-weight units in flight per lane (e = 1536: one pass)
#define IN_UNITS 3   // in_proj's (d = 768: one pass); with __launch_bounds__(128, 6), 80 registers: 130M's 768 blocks
                     // in one wave (6 units took 96 registers: 5 blocks a multiprocessor, 1.16 waves)

// A 2-byte weight widened (KIND 1 BF16, 2 F16; common.cuh's to_f32).
template <int KIND> __device__ __forceinline__ float narrow_to_f32(unsigned short h)
{
    return KIND == 1 ? to_f32(bf16_bits{h}) : to_f32(half_bits{h});
}

template <int KIND> __device__ __forceinline__ float load_w(const void* w, i64 i)
{
    if (KIND == 0) return __ldg((const float*)w + i);
    return narrow_to_f32<KIND>(__ldg((const unsigned short*)w + i));
}

// 8 weights as loaded (F32: two 16-byte words; BF16, F16: one), widened to F32 only where they are multiplied, so that
// weights kept in flight across a loop take 4 registers a unit in BF16, not 8.
template <int KIND> struct Raw8 { uint4 q[KIND == 0 ? 2 : 1]; };

// Weights i .. i+7 (i a multiple of 8, the row 16-byte aligned), as loaded.
template <int KIND> __device__ __forceinline__ void load_raw8(const void* w, i64 i, Raw8<KIND>& r)
{
    const uint4* p = (const uint4*)((const char*)w + i * (KIND == 0 ? 4 : 2));
    r.q[0] = __ldg(p);
    if constexpr (KIND == 0) r.q[1] = __ldg(p + 1);
}

template <int KIND> __device__ __forceinline__ void widen8(const Raw8<KIND>& r, float v[8])
{
    if constexpr (KIND == 0)
    {
        v[0] = __uint_as_float(r.q[0].x); v[1] = __uint_as_float(r.q[0].y); v[2] = __uint_as_float(r.q[0].z); v[3] = __uint_as_float(r.q[0].w);
        v[4] = __uint_as_float(r.q[1].x); v[5] = __uint_as_float(r.q[1].y); v[6] = __uint_as_float(r.q[1].z); v[7] = __uint_as_float(r.q[1].w);
    }
    else
    {
        unsigned u[4] = { r.q[0].x, r.q[0].y, r.q[0].z, r.q[0].w };
#pragma unroll
        for (int k = 0; k < 4; k++)
        {
            v[2 * k] = narrow_to_f32<KIND>((unsigned short)(u[k] & 0xffffu));
            v[2 * k + 1] = narrow_to_f32<KIND>((unsigned short)(u[k] >> 16));
        }
    }
}

// Weights i .. i+7 widened to F32.
template <int KIND> __device__ __forceinline__ void load_w8(const void* w, i64 i, float v[8])
{
    Raw8<KIND> r;
    load_raw8<KIND>(w, i, r);
    widen8<KIND>(r, v);
}

// s + Σ_k v[k]·x[k] over 8 values, x 16-byte aligned (shared memory).
__device__ __forceinline__ float fma8(const float v[8], const float* x, float s)
{
    float4 x0 = ((const float4*)x)[0], x1 = ((const float4*)x)[1];
    s = fmaf(v[0], x0.x, s); s = fmaf(v[1], x0.y, s); s = fmaf(v[2], x0.z, s); s = fmaf(v[3], x0.w, s);
    s = fmaf(v[4], x1.x, s); s = fmaf(v[5], x1.y, s); s = fmaf(v[6], x1.z, s); s = fmaf(v[7], x1.w, s);
    return s;
}

// Programmatic dependent launch (sm_90): let the next kernel start, and wait for the previous one's writes.
__device__ __forceinline__ void grid_launch_dependents()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}
__device__ __forceinline__ void grid_wait()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// The first U·32 units of 8 weights of a row, lane l taking units l, l + 32, … (16-byte loads; `vec` rows only).
template <int KIND, int U> __device__ __forceinline__ void load_units(const void* w, i64 row, int K, int u0, float v[U][8])
{
    int lane = threadIdx.x & 31, units = K >> 3;
#pragma unroll
    for (int q = 0; q < U; q++)
    {
        int u = u0 + lane + 32 * q;
        if (u < units) load_w8<KIND>(w, row * K + (i64)u * 8, v[q]);
    }
}

// acc[b] = Σ_i W[row, i]·xs[b·K + i] for the nb ≤ MAX_ROWS streams of xs (shared memory), the whole warp cooperating;
// every lane gets the sums. Up to U 16-byte loads per lane are issued before the first multiply; with `preloaded`
// the first U·32 units are already in v (load_units, issued before grid_wait).
template <int KIND, int U> __device__ __forceinline__ void warp_dot(const void* w, i64 row, int K, int vec, const float* xs, int nb,
    float acc[MAX_ROWS], float v[U][8], bool preloaded)
{
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int b = 0; b < MAX_ROWS; b++) acc[b] = 0.f;
    if (vec)
    {
        int units = K >> 3;
        for (int u0 = 0; u0 < units; u0 += 32 * U)
        {
            if (!(preloaded && u0 == 0)) load_units<KIND, U>(w, row, K, u0, v);
#pragma unroll
            for (int q = 0; q < U; q++)
            {
                int u = u0 + lane + 32 * q;
                if (u >= units) continue;
#pragma unroll
                for (int b = 0; b < MAX_ROWS; b++)
                {
                    if (b >= nb) break;
                    acc[b] = fma8(v[q], xs + b * K + u * 8, acc[b]);
                }
            }
        }
    }
    else
        for (int i = lane; i < K; i += 32)
        {
            float wv = load_w<KIND>(w, row * K + i);
#pragma unroll
            for (int b = 0; b < MAX_ROWS; b++)
                if (b < nb) acc[b] = fmaf(wv, xs[b * K + i], acc[b]);
        }
#pragma unroll
    for (int b = 0; b < MAX_ROWS; b++) acc[b] = warp_sum(acc[b]);
}

__device__ __forceinline__ int warp_index() { return blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); }
__device__ __forceinline__ int warp_count() { return gridDim.x * (blockDim.x >> 5); }

// The first weights of this warp's first row (warp_index()) into v, issued before waiting for earlier work (nothing
// writes weights); whether it did (rows read 16 bytes at a time only).
template <int KIND, int U> __device__ __forceinline__ bool preload(const void* w, int rows, int K, int vec, float v[U][8])
{
    int row = warp_index();
    bool pre = vec && row < rows;
    if (pre) load_units<KIND, U>(w, row, K, 0, v);
    return pre;
}

// Asks L2 for the bytes at w, the grid's threads one 128-byte line each at a time, so that a later phase's loads hit L2
// while this phase keeps HBM busy.
__device__ __forceinline__ void prefetch_l2(const void* w, i64 bytes)
{
    for (i64 at = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * 128; at < bytes; at += (i64)gridDim.x * blockDim.x * 128)
        asm volatile("prefetch.global.L2 [%0];" :: "l"((const char*)w + at));
}

// Every block of the grid waits here for all the others (the host launches no more blocks than fit on the GPU at once).
// The top bit of *count flips when the last block arrives: block 0 adds 2^31 − (blocks − 1), the others 1, so the low
// bits come back to 0 and the counter needs no reset between barriers or launches. __threadfence before the arrival
// publishes the block's writes, the one after the wait orders the reads that follow.
__device__ void grid_barrier(unsigned* count)
{
    __syncthreads();
    if (threadIdx.x == 0)
    {
        unsigned add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
        __threadfence();
        unsigned old = atomicAdd(count, add);
        for (unsigned spins = 0; ((old ^ *(volatile unsigned*)count) & 0x80000000u) == 0; spins++)
            if (spins > (1u << 24)) __trap();   // a block never came: fail the launch rather than hang
        __threadfence();
    }
    __syncthreads();
}

// xs[0, n) = x[0, n) into shared memory by the whole block, 16 bytes at a time where n is a multiple of 4 (x aligned).
__device__ __forceinline__ void to_shared(const float* x, float* xs, int n)
{
    if ((n & 3) == 0 && ((u64)x & 15) == 0)
        for (int i = threadIdx.x; i < (n >> 2); i += blockDim.x) ((float4*)xs)[i] = ((const float4*)x)[i];
    else
        for (int i = threadIdx.x; i < n; i += blockDim.x) xs[i] = x[i];
    __syncthreads();
}

// This thread's first NP RMSNorm weights, wv[k] = w[threadIdx.x + k·blockDim.x] (0 past d), loaded before the wait
// (nothing writes weights), so that the norm after it waits on h alone.
template <int NP> __device__ __forceinline__ void norm_weights(const float* w, int d, float (&wv)[NP])
{
#pragma unroll
    for (int k = 0; k < NP; k++)
    {
        int i = threadIdx.x + k * blockDim.x;
        wv[k] = i < d ? __ldg(w + i) : 0.f;
    }
}

// xs[b, :] = h[b, :]·r_b·w, r_b = 1/√(mean h[b]² + ε), for the nb streams (the whole block; xs in shared memory); wv: the
// thread's first NP weights (norm_weights), the rest read here.
template <int NP> __device__ void rms_norm_rows(const float* h, const float* w, const float (&wv)[NP], float eps, float* xs, int nb, int d)
{
    to_shared(h, xs, nb * d);
    for (int b = 0; b < nb; b++)
    {
        float* xb = xs + b * d;
        float s = 0.f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) s += xb[i] * xb[i];
        float r = 1.f / sqrtf(block_sum(s) / d + eps);
#pragma unroll
        for (int k = 0; k < NP; k++)
        {
            int i = threadIdx.x + k * blockDim.x;
            if (i < d) xb[i] *= r * wv[k];
        }
        for (int i = threadIdx.x + NP * blockDim.x; i < d; i += blockDim.x) xb[i] *= r * w[i];
    }
    __syncthreads();
}

// u = silu(the causal conv at the new position x of stream b, channel c): b_c + Σ_{j<K−1} w[c, j]·state[b, c, j] + w[c, K−1]·x.
__device__ __forceinline__ float conv_silu(const float* convState, const float* convW, const float* convB, int b, int c, int e, int K, float x)
{
    const float* st = convState + ((i64)b * e + c) * (K - 1);
    const float* wc = convW + (i64)c * K;
    float acc = convB ? convB[c] : 0.f;
    for (int j = 0; j < K - 1; j++) acc = fmaf(wc[j], st[j], acc);
    return silu_f(fmaf(wc[K - 1], x, acc));
}

#define NORM_PRE 6   // RMSNorm weights a thread loads before the wait: d ≤ 768 at 128 threads (larger d reads the rest after)
#define CONV_PRE 4   // the conv widths whose weights in_proj loads before the wait (Mamba's 4); wider ones read them after

// What in_proj reads for this warp's first row besides W_in and h: the RMSNorm weights, the bias and the conv's weights
// before the wait (in_proj_weights: nothing writes them), and the conv state of stream `lane` at its start, beside h
// (in_proj_state), so that the only loads it waits on after the wait are h's and the state's, issued together.
// (Before, each was a round trip of its own after the norm or the product: three after the wait.)
struct InProjPre { float norm[NORM_PRE], bias, convW[CONV_PRE - 1], convLast, convB, state[CONV_PRE - 1]; };

__device__ __forceinline__ void in_proj_weights(const float* normW, const float* bias, const float* convW, const float* convB, int d, int rows,
    int K, InProjPre& p)
{
    norm_weights<NORM_PRE>(normW, d, p.norm);
    int row = warp_index();
    p.bias = bias && row < rows ? __ldg(bias + row) : 0.f;
    if (row < (rows >> 1) && K <= CONV_PRE)
    {
#pragma unroll
        for (int j = 0; j < CONV_PRE - 1; j++) p.convW[j] = j < K - 1 ? __ldg(convW + (i64)row * K + j) : 0.f;
        p.convLast = __ldg(convW + (i64)row * K + K - 1);
        p.convB = convB ? __ldg(convB + row) : 0.f;
    }
}

__device__ __forceinline__ void in_proj_state(const float* convState, int batch, int rows, int K, InProjPre& p)
{
    int row = warp_index(), e = rows >> 1, lane = threadIdx.x & 31;
    if (row < e && K <= CONV_PRE && lane < batch)
#pragma unroll
        for (int j = 0; j < CONV_PRE - 1; j++) p.state[j] = j < K - 1 ? convState[((i64)lane * e + row) * (K - 1) + j] : 0.f;
}

// conv_silu of the warp's first row for stream `lane`, from what in_proj_weights and in_proj_state loaded (K ≤ CONV_PRE;
// the same operations in the same order as conv_silu).
__device__ __forceinline__ float conv_silu_pre(const InProjPre& p, int K, float x)
{
    float acc = p.convB;
#pragma unroll
    for (int j = 0; j < CONV_PRE - 1; j++)
        if (j < K - 1) acc = fmaf(p.convW[j], p.state[j], acc);
    return silu_f(fmaf(p.convLast, x, acc));
}

// 1. xz[b, row] = x̂_b·W_in[row] (+ bias[row]), x̂ = RMSNorm(h)·norm_w; rows = 2e; u[b, c] = silu(conv(…, x = xz[b, c]))
// for c < e. Dynamic shared memory: batch·d floats.
// v, pre: preload's of (w, rows, d); ip: in_proj_weights' (before the wait); the caller has waited for h. (v and ip live
// in the caller's registers: these phases are inlined, so that no array goes to local memory.)
template <int KIND, int U> __device__ __forceinline__ void in_proj(const float* h, const float* normW, float eps, const void* w, const float* bias,
    const float* convState, const float* convW, const float* convB, float* xz, float* u, int batch, int d, int rows, int K, int vec,
    float v[U][8], bool pre, InProjPre& ip)
{
    extern __shared__ __align__(16) float xs[];
    in_proj_state(convState, batch, rows, K, ip);
    rms_norm_rows<NORM_PRE>(h, normW, ip.norm, eps, xs, batch, d);
    for (int row = warp_index(), first = 1; row < rows; row += warp_count(), pre = false, first = 0)
    {
        float acc[MAX_ROWS];
        warp_dot<KIND, U>(w, row, d, vec, xs, batch, acc, v, pre);
        int lane = threadIdx.x & 31, e = rows >> 1;
#pragma unroll
        for (int b = 0; b < MAX_ROWS; b++)
            if (b < batch && lane == b)   // lane b writes stream b (a compile-time index into acc)
            {
                float x = acc[b] + (first ? ip.bias : bias ? bias[row] : 0.f);
                xz[(i64)b * rows + row] = x;
                if (row < e) u[(i64)b * e + row] = first && K <= CONV_PRE ? conv_silu_pre(ip, K, x) : conv_silu(convState, convW, convB, b, row, e, K, x);
            }
    }
}

// 2. dbc[b, row] = u_b·W_x[row]; rows = r + 2n. Dynamic shared memory: batch·e floats.
template <int KIND> __device__ __forceinline__ void x_proj(const float* u, const void* w, float* dbc, int batch, int e, int rows, int vec,
    float v[UNITS][8], bool pre)
{
    extern __shared__ __align__(16) float xs[];
    to_shared(u, xs, batch * e);
    for (int row = warp_index(); row < rows; row += warp_count(), pre = false)
    {
        float acc[MAX_ROWS];
        warp_dot<KIND, UNITS>(w, row, e, vec, xs, batch, acc, v, pre);
        if ((threadIdx.x & 31) == 0)
            for (int b = 0; b < batch; b++) dbc[(i64)b * rows + row] = acc[b];
    }
}

// Element i of y, a buffer of kind 0 F32, 1 BF16 or 2 F16 (the kind of the weights the next cuBLAS product reads).
__device__ __forceinline__ void store_kind(void* y, i64 i, float v, int kind)
{
    if (kind == 0) store_as<0>(y, i, v);
    else if (kind == 1) store_as<1>(y, i, v);
    else store_as<2>(y, i, v);
}

// Larger batches (in_proj by cuBLAS): u[b, c] = silu(conv(…, x = xz[b, c])), and (uNarrow not null) the same values
// rounded to uKind (1 BF16, 2 F16) for x_proj's cuBLAS product with 2-byte weights; and out[0, hCount) = h, the
// residual that out_proj's product then adds to (β = 1), so that no separate pass adds it.
extern "C" __global__ void mamba_step_conv(const float* xz, const float* convState, const float* convW, const float* convB, float* u,
    void* uNarrow, int uKind, const float* h, float* out, i64 hCount, int batch, int e, int K)
{
    grid_launch_dependents();
    grid_wait();
    GRID_STRIDE(i, (i64)batch * e)
    {
        int b = (int)(i / e), c = (int)(i - (i64)b * e);
        float v = conv_silu(convState, convW, convB, b, c, e, K, xz[(i64)b * 2 * e + c]);
        u[i] = v;
        if (uNarrow) store_kind(uNarrow, i, v, uKind);
    }
    GRID_STRIDE(i, hCount) out[i] = h[i];
}

// Sum over the G lanes of a group (G a power of two ≤ 32; mask: the group's lanes).
template <int G> __device__ __forceinline__ float group_sum(float v, unsigned mask)
{
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o, G);
    return v;
}

// The lanes of this thread's G-lane group.
template <int G> __device__ __forceinline__ unsigned group_mask()
{
    return G == 32 ? FULL_MASK : ((1u << G) - 1) << (threadIdx.x & (32 - G));
}

// 3. The scan update of (stream b, channel c) = group g = b·e + c, G lanes each (16, up to 8 streams; beyond, scan_wide):
// lane l takes dt terms j ≡ l and states s ≡ l (mod G). scan_weights loads what no kernel writes (before the wait): the first dt_proj weights,
// A = −exp(A_log) of this lane (r, n ≤ 64 here; scan_group reads the rest), the channel's Δ bias and D.
template <int G> struct ScanPre { float wd[64 / G], a[64 / G], dtBias, D; };

template <int KIND, int G> __device__ __forceinline__ void scan_weights(const void* dtW, const float* aLog, const float* dtBias, const float* Dskip,
    int c, int r, int n, int lane, ScanPre<G>& p)
{
#pragma unroll
    for (int q = 0; q < 64 / G; q++)
    {
        int j = lane + G * q;
        p.wd[q] = j < r ? load_w<KIND>(dtW, (i64)c * r + j) : 0.f;
        p.a[q] = j < n ? -expf(aLog[(i64)c * n + j]) : 0.f;
    }
    p.dtBias = __ldg(dtBias + c);
    p.D = Dskip ? __ldg(Dskip + c) : 0.f;
}

// Every load of the step's own inputs (dbc's row, x, z, u and the lane's states with their B, C) is issued at once, before
// any arithmetic, so that the group waits on one round trip, not one for dt's dot product and more after it.
template <int KIND, int G> __device__ __forceinline__ void scan_group(i64 g, const float* xz, float* convState, const float* uu,
    const float* dbc, const void* dtW, const float* aLog, const float* Dskip,
    float* ssm, void* y, int yKind, int e, int K, int r, int n, const ScanPre<G>& w)
{
    int lane = threadIdx.x & (G - 1);
    unsigned mask = group_mask<G>();
    int b = (int)(g / e), c = (int)(g - (i64)b * e);
    const float* row = dbc + (i64)b * (r + 2 * n);
    float* hs = ssm + g * n;
    float dts[64 / G], hq[64 / G], bq[64 / G], cq[64 / G];
#pragma unroll
    for (int q = 0; q < 64 / G; q++)
    {
        int j = lane + G * q;
        dts[q] = j < r ? row[j] : 0.f;
        hq[q] = j < n ? hs[j] : 0.f;
        bq[q] = j < n ? row[r + j] : 0.f;
        cq[q] = j < n ? row[r + n + j] : 0.f;
    }
    float x = xz[(i64)b * 2 * e + c], zv = xz[(i64)b * 2 * e + e + c];
    float u = uu[g];
    float dt = 0.f;
#pragma unroll
    for (int q = 0; q < 64 / G; q++)
        if (lane + G * q < r) dt = fmaf(w.wd[q], dts[q], dt);
    for (int j = lane + 64; j < r; j += G) dt = fmaf(load_w<KIND>(dtW, (i64)c * r + j), row[j], dt);
    dt = softplus_f(group_sum<G>(dt, mask) + w.dtBias);
    float acc = 0.f;
#pragma unroll
    for (int q = 0; q < 64 / G; q++)
    {
        int s = lane + G * q;
        if (s >= n) break;
        float hv = fmaf(expf(dt * w.a[q]), hq[q], dt * bq[q] * u);
        hs[s] = hv;
        acc = fmaf(hv, cq[q], acc);
    }
    for (int s = lane + 64; s < n; s += G)
    {
        float hv = fmaf(expf(dt * -expf(aLog[(i64)c * n + s])), hs[s], dt * row[r + s] * u);
        hs[s] = hv;
        acc = fmaf(hv, row[r + n + s], acc);
    }
    acc = group_sum<G>(acc, mask);   // also orders every lane's conv-state read before lane 0's shift below
    if (lane == 0)
    {
        if (Dskip) acc = fmaf(w.D, u, acc);
        store_kind(y, g, acc * silu_f(zv), yKind);
        float* st = convState + g * (K - 1);
        for (int j = 0; j + 1 < K - 1; j++) st[j] = st[j + 1];
        if (K > 1) st[K - 2] = x;
    }
}

// One group per G lanes of the grid.
template <int KIND, int G> __device__ void scan(const float* xz, float* convState, const float* uu,
    const float* dbc, const void* dtW, const float* dtBias, const float* aLog, const float* Dskip,
    float* ssm, void* y, int yKind, int batch, int e, int K, int r, int n)
{
    i64 g = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / G;
    grid_launch_dependents();
    if (g >= (i64)batch * e) return;   // whole G-lane groups leave together
    ScanPre<G> w;
    scan_weights<KIND, G>(dtW, aLog, dtBias, Dskip, (int)(g % e), r, n, threadIdx.x & (G - 1), w);
    grid_wait();
    scan_group<KIND, G>(g, xz, convState, uu, dbc, dtW, aLog, Dskip, ssm, y, yKind, e, K, r, n, w);
}

// v[0, 4) = p[0, min(m, 4)), 0 beyond; one 16-byte load when `vec` (p 16-byte aligned) and m ≥ 4.
__device__ __forceinline__ void load4(const float* p, int m, int vec, float v[4])
{
    if (vec && m >= 4)
    {
        float4 q = *(const float4*)p;
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    }
    else
        for (int k = 0; k < 4; k++) v[k] = k < m ? p[k] : 0.f;
}

__device__ __forceinline__ void store4(float* p, int m, int vec, const float v[4])
{
    if (vec && m >= 4) *(float4*)p = make_float4(v[0], v[1], v[2], v[3]);
    else
        for (int k = 0; k < 4 && k < m; k++) p[k] = v[k];
}

#define WIDE_STATES 16   // scan_wide's states whose A is read before the wait (Mamba-1's n); more are read after it

// 3b. The scan update beyond 8 streams (the products by cuBLAS): one thread a (stream b, channel c) = g = b·e + c, the
// same math as scan_group. A warp is 32 channels of one stream, so a dbc row is one uniform load for all of them, and a
// thread reads its dt_proj row, A and state 16 bytes at a time (`vec`: r a multiple of 8, n of 4, every row 16-byte
// aligned). At 64 streams of e = 1536, 98 K threads in one wave (__launch_bounds__(256, 3): ≤ 85 registers, 396 blocks
// resident on an H100), each one chain — A before the wait, then the step's loads issued together — where 4 lanes a
// pair (scan<4>) ran 393 K threads in ~3 waves, 20.6 µs a layer under Nsight Compute.
template <int KIND> __device__ void scan_wide(const float* xz, float* convState, const float* uu,
    const float* dbc, const void* dtW, const float* dtBias, const float* aLog, const float* Dskip,
    float* ssm, void* y, int yKind, int batch, int e, int K, int r, int n, int vec)
{
    i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    grid_launch_dependents();
    if (g >= (i64)batch * e) return;
    int b = (int)(g / e), c = (int)(g - (i64)b * e);
    const float* aRow = aLog + (i64)c * n;
    float a[WIDE_STATES];
#pragma unroll
    for (int q = 0; q < WIDE_STATES; q += 4)
    {
        float v[4];
        load4(aRow + q, n - q, vec, v);
#pragma unroll
        for (int k = 0; k < 4; k++) a[q + k] = -expf(v[k]);
    }
    grid_wait();
    const float* row = dbc + (i64)b * (r + 2 * n);
    float dt = 0.f;
    if (vec)
    {
#pragma unroll 6
        for (int j = 0; j < r; j += 8)
        {
            float w[8], x[8];
            load_w8<KIND>(dtW, (i64)c * r + j, w);
            load4(row + j, 4, 1, x);
            load4(row + j + 4, 4, 1, x + 4);
#pragma unroll
            for (int k = 0; k < 8; k++) dt = fmaf(w[k], x[k], dt);
        }
    }
    else
        for (int j = 0; j < r; j++) dt = fmaf(load_w<KIND>(dtW, (i64)c * r + j), row[j], dt);
    dt = softplus_f(dt + dtBias[c]);
    float x = xz[(i64)b * 2 * e + c], u = uu[g], du = dt * u;
    float* hs = ssm + g * n;
    const float* B = row + r;
    const float* C = row + r + n;
    float acc = 0.f;
#pragma unroll
    for (int q = 0; q < WIDE_STATES; q += 4)
    {
        if (q >= n) break;
        float h[4], bq[4], cq[4];
        load4(hs + q, n - q, vec, h);
        load4(B + q, n - q, vec, bq);
        load4(C + q, n - q, vec, cq);
#pragma unroll
        for (int k = 0; k < 4; k++)
        {
            h[k] = fmaf(expf(dt * a[q + k]), h[k], du * bq[k]);
            acc = fmaf(h[k], cq[k], acc);   // past n: h, C are 0
        }
        store4(hs + q, n - q, vec, h);
    }
    for (int s = WIDE_STATES; s < n; s++)
    {
        float hv = fmaf(expf(dt * -expf(aRow[s])), hs[s], du * B[s]);
        hs[s] = hv;
        acc = fmaf(hv, C[s], acc);
    }
    if (Dskip) acc = fmaf(Dskip[c], u, acc);
    store_kind(y, g, acc * silu_f(xz[(i64)b * 2 * e + e + c]), yKind);
    float* st = convState + g * (K - 1);
    for (int j = 0; j + 1 < K - 1; j++) st[j] = st[j + 1];
    if (K > 1) st[K - 2] = x;
}

// out_proj's bias of this warp's first row, loaded before the wait (0 without a bias or a row).
__device__ __forceinline__ float out_proj_bias(const float* bias, int d)
{
    int row = warp_index();
    return bias && row < d ? __ldg(bias + row) : 0.f;
}

// 4. out[b, row] = h[b, row] + y_b·W_out[row] (+ bias[row]); rows = d. Dynamic shared memory: batch·e floats.
// firstBias: out_proj_bias's; lane b reads stream b's residual of the first row beside y, so that the only round trip
// after the wait is those loads (before, h was read after the product).
template <int KIND> __device__ __forceinline__ void out_proj(const float* y, const void* w, const float* bias, const float* h, float* out,
    int batch, int e, int d, int vec, float v[UNITS][8], bool pre, float firstBias)
{
    extern __shared__ __align__(16) float xs[];
    int lane = threadIdx.x & 31, row0 = warp_index();
    float res = lane < batch && row0 < d ? h[(i64)lane * d + row0] : 0.f;
    to_shared(y, xs, batch * e);
    for (int row = row0; row < d; row += warp_count(), pre = false)
    {
        float acc[MAX_ROWS];
        warp_dot<KIND, UNITS>(w, row, e, vec, xs, batch, acc, v, pre);
#pragma unroll
        for (int b = 0; b < MAX_ROWS; b++)
            if (b < batch && lane == b)   // lane b writes stream b (a compile-time index into acc)
                out[(i64)b * d + row] = row == row0 ? res + acc[b] + firstBias : h[(i64)b * d + row] + acc[b] + (bias ? bias[row] : 0.f);
    }
}

// One GEMV kernel: its first weights loaded before the wait.
#define GEMV_KERNEL_PROLOGUE(KIND, U, W, ROWS, K, VEC) \
    float v[U][8]; \
    bool pre = preload<KIND, U>(W, ROWS, K, VEC, v); \
    grid_launch_dependents(); \
    grid_wait();

// The whole layer in one persistent kernel: phases 1–4 above with a grid_barrier between them. Each phase loads its
// first weights (or the scan its dt_proj weights and A) before the barrier that precedes it; phase 1 asks L2 for W_x,
// W_dt and W_out while it streams W_in, phase 2 for `next` (nextBytes: the next layer's W_in, or nothing). The next
// kernel may launch once every block has passed the last barrier (all resident, so its early blocks cannot keep one of
// ours from starting). Dynamic shared memory: batch·max(d, e) floats.
template <int KIND> __device__ __forceinline__ void layer(const float* h, const float* normW, float eps, const void* inW, const float* inBias,
    float* convState, const float* convW, const float* convB, float* xz, float* u, const void* xW, float* dbc,
    const void* dtW, const float* dtBias, const float* aLog, const float* Dskip, float* ssm, float* y,
    const void* outW, const float* outBias, float* out, unsigned* barrier, const void* next, i64 nextBytes,
    int batch, int d, int e, int K, int r, int n, int vecIn, int vecX, int vecOut)
{
    int xRows = r + 2 * n, size = KIND == 0 ? 4 : 2;
    float v[UNITS][8];
    bool pre = preload<KIND, UNITS>(inW, 2 * e, d, vecIn, v);
    InProjPre ip;
    in_proj_weights(normW, inBias, convW, convB, d, 2 * e, K, ip);
    prefetch_l2(xW, (i64)xRows * e * size);
    prefetch_l2(dtW, (i64)e * r * size);
    prefetch_l2(outW, (i64)d * e * size);
    grid_wait();
    in_proj<KIND, UNITS>(h, normW, eps, inW, inBias, convState, convW, convB, xz, u, batch, d, 2 * e, K, vecIn, v, pre, ip);
    pre = preload<KIND, UNITS>(xW, xRows, e, vecX, v);
    grid_barrier(barrier);
    prefetch_l2(next, nextBytes);   // the next layer's W_in, while phases 2–4 read L2
    x_proj<KIND>(u, xW, dbc, batch, e, xRows, vecX, v, pre);
    i64 groups = (i64)batch * e, g0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 4, stride = ((i64)gridDim.x * blockDim.x) >> 4;
    ScanPre<16> sw;
    if (g0 < groups) scan_weights<KIND, 16>(dtW, aLog, dtBias, Dskip, (int)(g0 % e), r, n, threadIdx.x & 15, sw);
    grid_barrier(barrier);
    for (i64 g = g0; g < groups; g += stride)
    {
        if (g != g0) scan_weights<KIND, 16>(dtW, aLog, dtBias, Dskip, (int)(g % e), r, n, threadIdx.x & 15, sw);
        scan_group<KIND, 16>(g, xz, convState, u, dbc, dtW, aLog, Dskip, ssm, y, 0, e, K, r, n, sw);
    }
    pre = preload<KIND, UNITS>(outW, d, e, vecOut, v);
    float outBias0 = out_proj_bias(outBias, d);
    grid_barrier(barrier);
    grid_launch_dependents();
    out_proj<KIND>(y, outW, outBias, h, out, batch, e, d, vecOut, v, pre, outBias0);
}

// (value, index) of the larger; equal values: the lower index (the host's arg-max takes the first).
__device__ __forceinline__ void arg_max_merge(float& v, int& i, float v2, int i2)
{
    if (v2 > v || (v2 == v && i2 < i)) { v = v2; i = i2; }
}

// The block's arg-max per stream from each warp's (value, index) (and the first non-finite logit it saw), written to
// partials[b·gridDim.x + block] as (value bits, index), index −1 − (bad logit) when one was not finite.
template <int NB> __device__ void block_arg_max(const float best[NB], const int bestAt[NB], const int bad[NB], int nb, int2* partials)
{
    __shared__ float sv[32][NB];
    __shared__ int si[32][NB], sb[32][NB];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
#pragma unroll
        for (int b = 0; b < NB; b++)
            if (b < nb) { sv[warp][b] = best[b]; si[warp][b] = bestAt[b]; sb[warp][b] = bad[b]; }
    __syncthreads();
    if ((int)threadIdx.x < nb)
    {
        int b = threadIdx.x;
        float v = sv[0][b];
        int at = si[0][b], worst = sb[0][b];
        for (int k = 1; k < warps; k++) { arg_max_merge(v, at, sv[k][b], si[k][b]); worst = min(worst, sb[k][b]); }
        partials[(i64)b * gridDim.x + blockIdx.x] = make_int2(__float_as_int(v), worst < 0x7fffffff ? -1 - worst : at);
    }
}

// *id = the arg-max of one stream over its blocks' partials (the whole block: a few loads a thread, then the block's
// reduction); −1 when a logit was not finite. The partials are read from L2 (__ldcg): other blocks of the same grid may
// have just written them (head's last block).
__device__ void finish_arg_max(const int2* partials, int blocks, i64* id)
{
    __shared__ float sv[32];
    __shared__ int si[32], sb[32];
    float best = NEG_INF;
    int at = 0x7fffffff, bad = 0;
    for (int k = threadIdx.x; k < blocks; k += blockDim.x)
    {
        int2 p = __ldcg(partials + k);
        if (p.y < 0) bad = 1;
        else arg_max_merge(best, at, __int_as_float(p.x), p.y);
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        float v2 = __shfl_xor_sync(FULL_MASK, best, o);
        int i2 = __shfl_xor_sync(FULL_MASK, at, o);
        arg_max_merge(best, at, v2, i2);
        bad |= __shfl_xor_sync(FULL_MASK, bad, o);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();   // an earlier call's thread 0 may still read sv, si, sb
    if (lane == 0) { sv[warp] = best; si[warp] = at; sb[warp] = bad; }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++) { arg_max_merge(best, at, sv[k], si[k]); bad |= sb[k]; }
        *id = bad || at == 0x7fffffff ? -1 : (i64)at;
    }
}

// Whether this block is the last of the grid to get here, counted in *done (which that block sets back to 0 when it has
// finished, so the next launch, a graph's replay too, starts from 0). The fence before the count publishes this block's
// writes; the one after it, in the last block, orders its reads of the others' after their counts.
__device__ bool last_block(unsigned* done)
{
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
    {
        __threadfence();   // the counting thread's own release (the block's writes, ordered before it by the barrier)
        last = atomicAdd(done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

// Pass p of this warp's rows row0 + k·step (k < R) into v: lane l loads units p·32·UH + l + 32·q (q < UH) of each row
// (rows past `rows` and units past a row's end are left as they were).
template <int KIND, int R, int UH> __device__ __forceinline__ void load_rows(const void* w, int row0, int step, int rows, int d, int p,
    Raw8<KIND> v[R][UH])
{
    int lane = threadIdx.x & 31, units = d >> 3;
#pragma unroll
    for (int k = 0; k < R; k++)
#pragma unroll
        for (int q = 0; q < UH; q++)
        {
            int row = row0 + k * step, u = p * 32 * UH + lane + 32 * q;
            if (row < rows && u < units) load_raw8<KIND>(w, (i64)row * d + (i64)u * 8, v[k][q]);
        }
}

// Head: logits[b, row] = x̂_b·W[row], x̂ = RMSNorm(h)·norm_w; rows = vocab; each block's arg-max per stream into partials;
// with ids, the last block to finish reduces them into ids[b] (finish_arg_max; *done counts the blocks). NB: the streams
// an instance holds (1, or up to MAX_ROWS). Warp w takes rows w, w + W, w + 2W, … (W warps in the grid) R at a time; the
// next R rows' loads are issued as soon as the current ones' weights are multiplied, before their sums are reduced
// across the warp, so a warp has a load in flight nearly all the time (R = 2 at one stream: 6 units of 16 bytes a lane
// at d = 768; the 8-stream instance keeps R = 1, its accumulators already take the registers). The host launches no more
// blocks than are resident at once, so the RMSNorm is done once a block. Rows longer than 32·UH units take several passes.
// mamba_step_head1's __launch_bounds__ cap it at 80 registers F32 (6 blocks of 128 threads a multiprocessor), 64 BF16/F16 (8).
template <int KIND, int NB> __device__ void head(const float* h, const float* normW, float eps, const void* w, float* logits,
    int2* partials, unsigned* done, i64* ids, int batch, int d, int rows, int vec)
{
    constexpr int R = NB == 1 ? 2 : 1, UH = 3;
    extern __shared__ __align__(16) float xs[];
    int lane = threadIdx.x & 31, first = warp_index(), warps = warp_count(), units = d >> 3;
    int passes = vec ? (units + 32 * UH - 1) / (32 * UH) : 1;
    int groups = first < rows ? (rows - first + R * warps - 1) / (R * warps) : 0, items = groups * passes;
    Raw8<KIND> v[R][UH];
    if (vec && items > 0) load_rows<KIND, R, UH>(w, first, warps, rows, d, 0, v);   // weights: nothing writes them
    float nw[NORM_PRE];
    norm_weights<NORM_PRE>(normW, d, nw);
    grid_launch_dependents();
    grid_wait();
    rms_norm_rows<NORM_PRE>(h, normW, nw, eps, xs, batch, d);
    float best[NB], acc[R][NB];
    int bestAt[NB], bad[NB];
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        best[b] = NEG_INF; bestAt[b] = 0x7fffffff; bad[b] = 0x7fffffff;
#pragma unroll
        for (int k = 0; k < R; k++) acc[k][b] = 0.f;
    }
    for (int t = 0; t < items; t++)
    {
        int g = t / passes, p = t - g * passes, row0 = first + g * R * warps;
        if (vec)
        {
#pragma unroll
            for (int k = 0; k < R; k++)
#pragma unroll
                for (int q = 0; q < UH; q++)
                {
                    int u = p * 32 * UH + lane + 32 * q;
                    if (row0 + k * warps >= rows || u >= units) continue;
                    float wv[8];
                    widen8<KIND>(v[k][q], wv);
#pragma unroll
                    for (int b = 0; b < NB; b++)
                        if (b < batch) acc[k][b] = fma8(wv, xs + b * d + u * 8, acc[k][b]);
                }
            if (t + 1 < items)
            {
                int gn = (t + 1) / passes;
                load_rows<KIND, R, UH>(w, first + gn * R * warps, warps, rows, d, t + 1 - gn * passes, v);
            }
        }
        else
            for (int i = lane; i < d; i += 32)
#pragma unroll
                for (int k = 0; k < R; k++)
                {
                    int row = row0 + k * warps;
                    if (row >= rows) continue;
                    float wv = load_w<KIND>(w, (i64)row * d + i);
#pragma unroll
                    for (int b = 0; b < NB; b++)
                        if (b < batch) acc[k][b] = fmaf(wv, xs[b * d + i], acc[k][b]);
                }
        if (p < passes - 1) continue;
#pragma unroll
        for (int k = 0; k < R; k++)
        {
            int row = row0 + k * warps;
#pragma unroll
            for (int b = 0; b < NB; b++)
            {
                float s = warp_sum(acc[k][b]);
                acc[k][b] = 0.f;
                if (b >= batch || row >= rows) continue;
                if (isfinite(s)) arg_max_merge(best[b], bestAt[b], s, row);
                else bad[b] = min(bad[b], row);
                if (lane == 0) logits[(i64)b * rows + row] = s;
            }
        }
    }
    block_arg_max<NB>(best, bestAt, bad, batch, partials);
    if (ids == nullptr || !last_block(done)) return;
    for (int b = 0; b < batch; b++) finish_arg_max(partials + (i64)b * gridDim.x, gridDim.x, ids + b);
    if (threadIdx.x == 0) *done = 0;
}

#define MAMBA_STEP_KERNELS(SUFFIX, KIND) \
extern "C" __global__ void __launch_bounds__(128, 6) mamba_step_in_proj_##SUFFIX(const float* h, const float* normW, float eps, const void* w, const float* bias, \
    const float* convState, const float* convW, const float* convB, float* xz, float* u, int batch, int d, int rows, int K, int vec) \
{ InProjPre ip; in_proj_weights(normW, bias, convW, convB, d, rows, K, ip); \
  GEMV_KERNEL_PROLOGUE(KIND, IN_UNITS, w, rows, d, vec) in_proj<KIND, IN_UNITS>(h, normW, eps, w, bias, convState, convW, convB, xz, u, batch, d, rows, K, vec, v, pre, ip); } \
extern "C" __global__ void mamba_step_x_proj_##SUFFIX(const float* u, const void* w, float* dbc, int batch, int e, int rows, int vec) \
{ GEMV_KERNEL_PROLOGUE(KIND, UNITS, w, rows, e, vec) x_proj<KIND>(u, w, dbc, batch, e, rows, vec, v, pre); } \
extern "C" __global__ void mamba_step_scan_##SUFFIX(const float* xz, float* convState, const float* u, \
    const float* dbc, const void* dtW, const float* dtBias, const float* aLog, const float* Dskip, float* ssm, void* y, int yKind, \
    int batch, int e, int K, int r, int n) \
{ scan<KIND, 16>(xz, convState, u, dbc, dtW, dtBias, aLog, Dskip, ssm, y, yKind, batch, e, K, r, n); } \
extern "C" __global__ void __launch_bounds__(256, 3) mamba_step_scan_wide_##SUFFIX(const float* xz, float* convState, const float* u, \
    const float* dbc, const void* dtW, const float* dtBias, const float* aLog, const float* Dskip, float* ssm, void* y, int yKind, \
    int batch, int e, int K, int r, int n, int vec) \
{ scan_wide<KIND>(xz, convState, u, dbc, dtW, dtBias, aLog, Dskip, ssm, y, yKind, batch, e, K, r, n, vec); } \
extern "C" __global__ void mamba_step_out_proj_##SUFFIX(const float* y, const void* w, const float* bias, const float* h, float* out, \
    int batch, int e, int d, int vec) \
{ float firstBias = out_proj_bias(bias, d); GEMV_KERNEL_PROLOGUE(KIND, UNITS, w, d, e, vec) out_proj<KIND>(y, w, bias, h, out, batch, e, d, vec, v, pre, firstBias); } \
extern "C" __global__ void mamba_step_layer_##SUFFIX(const float* h, const float* normW, float eps, const void* inW, const float* inBias, \
    float* convState, const float* convW, const float* convB, float* xz, float* u, const void* xW, float* dbc, \
    const void* dtW, const float* dtBias, const float* aLog, const float* Dskip, float* ssm, float* y, \
    const void* outW, const float* outBias, float* out, unsigned* barrier, const void* next, i64 nextBytes, \
    int batch, int d, int e, int K, int r, int n, int vecIn, int vecX, int vecOut) \
{ layer<KIND>(h, normW, eps, inW, inBias, convState, convW, convB, xz, u, xW, dbc, dtW, dtBias, aLog, Dskip, ssm, y, \
    outW, outBias, out, barrier, next, nextBytes, batch, d, e, K, r, n, vecIn, vecX, vecOut); } \
extern "C" __global__ void mamba_step_head_##SUFFIX(const float* h, const float* normW, float eps, const void* w, float* logits, \
    int2* partials, unsigned* done, i64* ids, int batch, int d, int rows, int vec) \
{ head<KIND, MAX_ROWS>(h, normW, eps, w, logits, partials, done, ids, batch, d, rows, vec); } \
extern "C" __global__ void __launch_bounds__(128, KIND == 0 ? 6 : 8) mamba_step_head1_##SUFFIX(const float* h, const float* normW, float eps, const void* w, float* logits, \
    int2* partials, unsigned* done, i64* ids, int batch, int d, int rows, int vec) \
{ head<KIND, 1>(h, normW, eps, w, logits, partials, done, ids, batch, d, rows, vec); }

MAMBA_STEP_KERNELS(f32, 0)
MAMBA_STEP_KERNELS(bf16, 1)
MAMBA_STEP_KERNELS(f16, 2)

// Large batches: each block's arg-max per stream over logits [batch, vocab] already computed (grid (blocks, batch)).
extern "C" __global__ void mamba_step_arg_max_partials(const float* logits, int2* partials, int vocab)
{
    grid_launch_dependents();
    grid_wait();
    int b = blockIdx.y;
    const float* row = logits + (i64)b * vocab;
    float best = NEG_INF;
    int at = 0x7fffffff, bad = 0x7fffffff;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x)
    {
        float v = row[i];
        if (isfinite(v)) arg_max_merge(best, at, v, i);
        else bad = min(bad, i);
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        float v2 = __shfl_xor_sync(FULL_MASK, best, o);
        int i2 = __shfl_xor_sync(FULL_MASK, at, o);
        arg_max_merge(best, at, v2, i2);
        bad = min(bad, __shfl_xor_sync(FULL_MASK, bad, o));
    }
    __shared__ float sv[32];
    __shared__ int si[32], sb[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sv[warp] = best; si[warp] = at; sb[warp] = bad; }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++) { arg_max_merge(best, at, sv[k], si[k]); bad = min(bad, sb[k]); }
        partials[(i64)b * gridDim.x + blockIdx.x] = make_int2(__float_as_int(best), bad < 0x7fffffff ? -1 - bad : at);
    }
}

// ids[b] = the arg-max over the blocks' partials of stream b (one block per stream); −1 when a logit was not finite.
extern "C" __global__ void mamba_step_arg_max_finish(const int2* partials, int blocks, i64* ids)
{
    grid_launch_dependents();
    grid_wait();
    finish_arg_max(partials + (i64)blockIdx.x * blocks, blocks, ids + blockIdx.x);
}
