// Depthwise causal conv1d, channels last (Ops/CausalConv1d.cs): x, y [B, L, D], w [D, K] (PyTorch's [D, 1, K]).
//   p_t[c] = b[c] + Σ_{j<K} w[c, j]·x_{t−K+1+j}[c]   (x_s = 0 for s < 0),   y = p or silu(p)
// Backward, dp = dy (or dy·silu'(p), p recomputed):
//   dx_s[c] = Σ_j w[c, j]·dp_{s+K−1−j}[c];   dw[c, j] = Σ_{b,t} dp_t[c]·x_{t−K+1+j}[c];   db[c] = Σ_{b,t} dp_t[c]
#define CONV_MAX_K 8

__device__ __forceinline__ float conv_pre(const float* x, const float* w, const float* bias, int L, int D, int K, i64 b, int t, int c)
{
    float acc = bias ? bias[c] : 0.f;
    for (int j = max(0, K - 1 - t); j < K; j++) acc = fmaf(x[(b * L + t - K + 1 + j) * D + c], w[c * K + j], acc);
    return acc;
}

__device__ __forceinline__ float conv_dp(const float* x, const float* w, const float* bias, int silu, const float* dy, int L, int D, int K, i64 b, int t, int c)
{
    float g = dy[(b * L + t) * D + c];
    return silu ? g * silu_grad_f(conv_pre(x, w, bias, L, D, K, b, t, c)) : g;
}

extern "C" __global__ void conv_forward(const float* x, const float* w, const float* bias, int silu, float* y, int B, int L, int D, int K)
{
    i64 n = (i64)B * L * D;
    GRID_STRIDE(i, n)
    {
        int c = (int)(i % D);
        i64 bt = i / D;
        int t = (int)(bt % L);
        float p = conv_pre(x, w, bias, L, D, K, bt / L, t, c);
        y[i] = silu ? silu_f(p) : p;
    }
}

extern "C" __global__ void conv_backward_dx(const float* x, const float* w, const float* bias, int silu, const float* dy, float* dx, int B, int L, int D, int K)
{
    i64 n = (i64)B * L * D;
    GRID_STRIDE(i, n)
    {
        int c = (int)(i % D);
        i64 bs = i / D, b = bs / L;
        int s = (int)(bs % L);
        float acc = 0.f;
        for (int j = 0; j < K; j++)
        {
            int t = s + K - 1 - j;
            if (t < L) acc = fmaf(conv_dp(x, w, bias, silu, dy, L, D, K, b, t, c), w[c * K + j], acc);
        }
        dx[i] = acc;
    }
}

// grid (⌈D/256⌉, segments): partial[seg, j, c] for j < K (dw) and j = K (db) over the segment's rows r = b·L + t
extern "C" __global__ void conv_params_partials(const float* x, const float* w, const float* bias, int silu, const float* dy,
    int B, int L, int D, int K, i64 rowsPerSegment, double* partial)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    i64 rows = (i64)B * L, r0 = (i64)blockIdx.y * rowsPerSegment, r1 = min(rows, r0 + rowsPerSegment);
    double acc[CONV_MAX_K + 1];
    #pragma unroll
    for (int j = 0; j <= CONV_MAX_K; j++) acc[j] = 0;
    for (i64 r = r0; r < r1; r++)
    {
        i64 b = r / L;
        int t = (int)(r % L);
        float dp = conv_dp(x, w, bias, silu, dy, L, D, K, b, t, c);
        #pragma unroll
        for (int j = 0; j < CONV_MAX_K; j++)
            if (j < K && t - K + 1 + j >= 0) acc[j] += (double)(dp * x[(r - K + 1 + j) * D + c]);
        acc[CONV_MAX_K] += dp;
    }
    double* out = partial + (i64)blockIdx.y * (K + 1) * D;
    for (int j = 0; j < K; j++) out[(i64)j * D + c] = acc[j];
    out[(i64)K * D + c] = acc[CONV_MAX_K];
}

// dw[c, j] = Σ_seg partial[seg, j, c];  db[c] = Σ_seg partial[seg, K, c]
extern "C" __global__ void conv_params_final(const double* partial, int segments, int D, int K, float* dw, float* db)
{
    i64 n = (i64)D * (K + 1);
    GRID_STRIDE(i, n)
    {
        int j = (int)(i / D), c = (int)(i % D);
        double s = 0;
        for (int g = 0; g < segments; g++) s += partial[((i64)g * (K + 1) + j) * D + c];
        if (j < K) dw[(i64)c * K + j] = (float)s;
        else if (db) db[c] = (float)s;
    }
}

// ---- tiled forms (session 10; CudaBackend.TiledConv picks them, the per-element kernels above are their reference twins) ----
// The per-element kernels divide a 64-bit index four ways per element and rebuild each pre-activation from K loads, K
// times over in dx (conv_dp per tap) and again in the parameter sums. Here a thread owns channel c of batch row b over a
// run of `run` consecutive steps [t0, t1) (a tile): the last K inputs sit in registers (win[j] = x_{t−K+1+j}), so each
// input is loaded once (plus K − 1 before the run), each pre-activation computed once; the next step's loads are issued
// before the current step's arithmetic. Grid: x walks the tiles b·runs + r (runs = ⌈L/run⌉) with stride gridDim.x,
// y = channel blocks. K is a template parameter (1…8): the windows are registers. Pointers are __restrict__: y and dx
// never alias the inputs (F.CausalConv1d allocates them).
__device__ __forceinline__ void conv_tile(int tile, int L, int run, int& b, int& t0, int& t1)
{
    int runs = (L + run - 1) / run;
    b = tile / runs;
    t0 = (tile - b * runs) * run;
    t1 = min(L, t0 + run);
}

template <int K> __device__ __forceinline__ float conv_window_pre(const float (&win)[K], const float (&wc)[K], float bc)
{
    float acc = bc;
#pragma unroll
    for (int j = 0; j < K; j++) acc = fmaf(win[j], wc[j], acc);
    return acc;
}

// The forward of a tile: CONV_AHEAD inputs of the channel loaded together, the next group's loads issued before the
// current group's arithmetic, so a thread keeps CONV_AHEAD loads in flight (one ahead left the HBM half idle: 116 µs at
// 1 × 16,384 × 1,536 F32, 1.7 TB/s; docs/cuda-kernel-notes.md, "Prefill"). y16 (may be null): y's BF16 copy, rounded to
// nearest even at the store, for a product that multiplies y in BF16 (x_proj reads u so).
#define CONV_AHEAD 8
template <int K> __device__ void conv_forward_tiled(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
    int silu, float* __restrict__ y, bf16_bits* __restrict__ y16, int B, int L, int D, int run)
{
    const int c = blockIdx.y * blockDim.x + threadIdx.x, tiles = B * ((L + run - 1) / run);
    if (c >= D) return;
    float wc[K], win[K];
#pragma unroll
    for (int j = 0; j < K; j++) wc[j] = w[(i64)c * K + j];
    const float bc = bias ? bias[c] : 0.f;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    {
        int b, t0, t1;
        conv_tile(tile, L, run, b, t0, t1);
        const i64 base = (i64)b * L * D + c;
        const float* xb = x + base;
#pragma unroll
        for (int j = 0; j < K - 1; j++) { int s = t0 - K + 1 + j; win[j] = s >= 0 ? xb[(i64)s * D] : 0.f; }
        float cur[CONV_AHEAD];
#pragma unroll
        for (int u = 0; u < CONV_AHEAD; u++) cur[u] = t0 + u < t1 ? xb[(i64)(t0 + u) * D] : 0.f;
        for (int t = t0; t < t1; t += CONV_AHEAD)
        {
            float next[CONV_AHEAD];
#pragma unroll
            for (int u = 0; u < CONV_AHEAD; u++) { int s = t + CONV_AHEAD + u; next[u] = s < t1 ? xb[(i64)s * D] : 0.f; }
#pragma unroll
            for (int u = 0; u < CONV_AHEAD; u++)
            {
                if (t + u >= t1) break;
                win[K - 1] = cur[u];
                float p = conv_window_pre<K>(win, wc, bc);
                float v = silu ? silu_f(p) : p;
                i64 at = base + (i64)(t + u) * D;
                y[at] = v;
                if (y16) y16[at] = from_f32<bf16_bits>(v);
#pragma unroll
                for (int j = 0; j < K - 1; j++) win[j] = win[j + 1];
            }
#pragma unroll
            for (int u = 0; u < CONV_AHEAD; u++) cur[u] = next[u];
        }
    }
}

// Backward of a tile, streaming forward in t: dp_t (dy_t, or dy_t·silu'(p_t) with p_t from the window) adds w[j]·dp_t to
// dx_{t−K+1+j}; dx_s is whole once dp_{s+K−1} is in, so acc[m] holds dx_{t−K+1+m} and acc[0] leaves at every step. A tile
// runs K − 1 steps past t1 (clipped at L) for its last dx; its steps [t0, t1) add dp_t·x_{t−K+1+j} to dw[j] and dp_t to db
// (double, as conv_params_partials), summed over the thread's tiles and written to partial[blockIdx.x, j, c] for
// conv_params_final (gridDim.x rows, in order: deterministic).
// dx is written as DX: float, or BF16 (rounded at the store: the operand of in_proj's backward products).
template <int K, typename DX> __device__ void conv_backward_tiled(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
    int silu, const float* __restrict__ dy, DX* __restrict__ dx, int B, int L, int D, int run, double* __restrict__ partial)
{
    const int c = blockIdx.y * blockDim.x + threadIdx.x, tiles = B * ((L + run - 1) / run);
    if (c >= D) return;
    float wc[K], win[K], acc[K];
    double sw[K], sb = 0;
#pragma unroll
    for (int j = 0; j < K; j++) { wc[j] = w[(i64)c * K + j]; sw[j] = 0; }
    const float bc = bias ? bias[c] : 0.f;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    {
        int b, t0, t1;
        conv_tile(tile, L, run, b, t0, t1);
        const i64 base = (i64)b * L * D + c;
        const float *xb = x + base, *dyb = dy + base;
        DX* dxb = dx + base;
#pragma unroll
        for (int j = 0; j < K; j++) acc[j] = 0.f;
#pragma unroll
        for (int j = 0; j < K - 1; j++) { int s = t0 - K + 1 + j; win[j] = s >= 0 ? xb[(i64)s * D] : 0.f; }
        const int tEnd = min(L, t1 + K - 1);
        float nx = xb[(i64)t0 * D], ng = dyb[(i64)t0 * D];
        for (int t = t0; t < tEnd; t++)
        {
            win[K - 1] = nx;
            float g = ng;
            if (t + 1 < tEnd) { nx = xb[(i64)(t + 1) * D]; ng = dyb[(i64)(t + 1) * D]; }
            float dp = silu ? g * silu_grad_f(conv_window_pre<K>(win, wc, bc)) : g;
#pragma unroll
            for (int j = 0; j < K; j++) acc[j] = fmaf(wc[j], dp, acc[j]);
            if (t < t1)
            {
#pragma unroll
                for (int j = 0; j < K; j++) sw[j] += (double)(dp * win[j]);
                sb += dp;
            }
            int s = t - K + 1;
            if (s >= t0) dxb[(i64)s * D] = from_f32<DX>(acc[0]);
#pragma unroll
            for (int j = 0; j < K - 1; j++) { acc[j] = acc[j + 1]; win[j] = win[j + 1]; }
            acc[K - 1] = 0.f;
        }
        // clipped at L: the dx whose later taps fall past the sequence's end are whole now (acc[m] holds dx_{tEnd−K+1+m})
#pragma unroll
        for (int m = 0; m < K - 1; m++)
        {
            int s = tEnd - K + 1 + m;
            if (s >= t0 && s < t1) dxb[(i64)s * D] = from_f32<DX>(acc[m]);
        }
    }
    double* out = partial + (i64)blockIdx.x * (K + 1) * D;
#pragma unroll
    for (int j = 0; j < K; j++) out[(i64)j * D + c] = sw[j];
    out[(i64)K * D + c] = sb;
}

#define CONV_TILED(K) \
extern "C" __global__ void conv_forward_k##K(const float* x, const float* w, const float* bias, int silu, float* y, bf16_bits* y16, \
    int B, int L, int D, int run) \
{ conv_forward_tiled<K>(x, w, bias, silu, y, y16, B, L, D, run); } \
extern "C" __global__ void conv_backward_k##K(const float* x, const float* w, const float* bias, int silu, const float* dy, float* dx, \
    int B, int L, int D, int run, double* partial) \
{ conv_backward_tiled<K, float>(x, w, bias, silu, dy, dx, B, L, D, run, partial); } \
extern "C" __global__ void conv_backward_k##K##_gbf16(const float* x, const float* w, const float* bias, int silu, const float* dy, \
    bf16_bits* dx, int B, int L, int D, int run, double* partial) \
{ conv_backward_tiled<K, bf16_bits>(x, w, bias, silu, dy, dx, B, L, D, run, partial); }
CONV_TILED(1)
CONV_TILED(2)
CONV_TILED(3)
CONV_TILED(4)
CONV_TILED(5)
CONV_TILED(6)
CONV_TILED(7)
CONV_TILED(8)

// The recurrent step for decoding (IBackend.CausalConv1dStep), one thread per (stream, channel):
//   y = b + Σ_{j<K−1} w[c, j]·state[j] + w[c, K−1]·x,  then state ← (state[1:], x);  y = silu(y) optional
extern "C" __global__ void conv_step(const float* x, float* state, const float* w, const float* bias, int silu, float* y, int batch, int D, int K)
{
    i64 n = (i64)batch * D;
    GRID_STRIDE(i, n)
    {
        int c = (int)(i % D), km1 = K - 1;
        float* st = state + i * km1;
        const float* wc = w + (i64)c * K;
        float acc = bias ? bias[c] : 0.f;
        for (int j = 0; j < km1; j++) acc = fmaf(wc[j], st[j], acc);
        float xi = x[i];
        acc = fmaf(wc[km1], xi, acc);
        for (int j = 0; j + 1 < km1; j++) st[j] = st[j + 1];
        if (km1 > 0) st[km1 - 1] = xi;
        y[i] = silu ? silu_f(acc) : acc;
    }
}

// The conv state a prefill leaves (IBackend.CausalConv1dSaveState), one thread per (stream, channel, slot):
//   state[b, c, j] = x[b, L − W + j, c]   (0 where L − W + j < 0: fewer inputs than slots)
extern "C" __global__ void conv_save_state(const float* x, float* state, int batch, int L, int D, int W)
{
    i64 n = (i64)batch * D * W;
    GRID_STRIDE(i, n)
    {
        int j = (int)(i % W), c = (int)((i / W) % D);
        i64 b = i / ((i64)W * D);
        int t = L - W + j;
        state[i] = t >= 0 ? x[(b * L + t) * D + c] : 0.f;
    }
}

// The state's inputs as rows before a continued sequence (IBackend.CausalConv1dStateRows), one thread per (stream, slot, channel):
//   rows[b, j, c] = state[b, c, j]
extern "C" __global__ void conv_state_rows(const float* state, float* rows, int batch, int D, int W)
{
    i64 n = (i64)batch * W * D;
    GRID_STRIDE(i, n)
    {
        int c = (int)(i % D), j = (int)((i / D) % W);
        i64 b = i / ((i64)D * W);
        rows[i] = state[(b * D + c) * W + j];
    }
}
