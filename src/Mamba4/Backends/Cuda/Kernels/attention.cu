// Causal multi-head attention (Ops/Attention.cs), one warp per query row (forward, dq) or key row (dk, dv);
// each lane holds up to 4 of the head's dHead ≤ 128 features. q, k, v, y: [B, L, H·Dh]; lse [B, H, L].
//   s_ij = q_i·k_j/√Dh + bias_ij,   lse_i = log Σ_j exp(s_ij),   p_ij = exp(s_ij − lse_i),   y_i = Σ_j p_ij v_j
//   Dlt_i = dy_i·y_i,  ds_ij = p_ij (dy_i·v_j − Dlt_i),  dq_i = Σ_j ds_ij k_j/√Dh,  dk_j = Σ_i ds_ij q_i/√Dh,  dv_j = Σ_i p_ij dy_i
// Keys of row i: without padding ids, j ≤ i. With ids (RecBole's mask): if some j ≤ i has ids[j] ≠ 0, every key j < L
// with bias 0 where j ≤ i and ids[j] ≠ 0, else −10000 (masked weights underflow to 0 unless scores are ~10⁴);
// if none, every key with bias 0 (a plain softmax over all L keys), as the CPU backend.
#define ATT_PER_LANE 4
#define ATT_MASK -10000.f

struct AttRow
{
    int keys;         // keys 0 … keys−1 are considered
    bool biased;      // apply the −10000 bias to masked keys
};

// first position of batch row b whose id is not padding (L if none)
__device__ int first_visible(const i64* pad, int L)
{
    int lane = threadIdx.x & 31;
    for (int j0 = 0; j0 < L; j0 += 32)
    {
        int j = j0 + lane;
        unsigned ballot = __ballot_sync(FULL_MASK, j < L && pad[j] != 0);
        if (ballot) return j0 + __ffs(ballot) - 1;
    }
    return L;
}

__device__ __forceinline__ AttRow att_row(const i64* pad, int firstVisible, int i, int L)
{
    AttRow r;
    if (!pad) { r.keys = i + 1; r.biased = false; }
    else if (firstVisible > i) { r.keys = L; r.biased = false; }
    else { r.keys = L; r.biased = true; }
    return r;
}

__device__ __forceinline__ float att_bias(const i64* pad, const AttRow& r, int i, int j)
{
    return (r.biased && (j > i || pad[j] == 0)) ? ATT_MASK : 0.f;
}

__device__ __forceinline__ void att_load(const float* p, int dh, float* out)
{
    int lane = threadIdx.x & 31;
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; out[e] = f < dh ? p[f] : 0.f; }
}

__device__ __forceinline__ float att_dot(const float* a, const float* p, int dh)
{
    int lane = threadIdx.x & 31;
    float s = 0.f;
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) s = fmaf(a[e], p[f], s); }
    return warp_sum(s);
}

// warp w → (b, h, i)
extern "C" __global__ void attention_forward(const float* q, const float* k, const float* v, const i64* pad, float* y, float* lse,
    int B, int L, int H, int dh)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H * L) return;
    int lane = threadIdx.x & 31, i = (int)(row % L), h = (int)((row / L) % H);
    i64 b = row / ((i64)L * H);
    int stride = H * dh;
    const i64* pb = pad ? pad + b * L : 0;
    AttRow r = att_row(pb, pb ? first_visible(pb, L) : 0, i, L);
    float scale = 1.f / sqrtf((float)dh);
    float qi[ATT_PER_LANE], acc[ATT_PER_LANE];
    att_load(q + (b * L + i) * stride + h * dh, dh, qi);
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) acc[e] = 0.f;
    float m = NEG_INF, l = 0.f;
    for (int j = 0; j < r.keys; j++)
    {
        float s = att_dot(qi, k + (b * L + j) * stride + h * dh, dh) * scale + att_bias(pb, r, i, j);
        float mNew = fmaxf(m, s), corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
        const float* vj = v + (b * L + j) * stride + h * dh;
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; acc[e] = acc[e] * corr + (f < dh ? p * vj[f] : 0.f); }
        m = mNew;
    }
    float* yi = y + (b * L + i) * stride + h * dh;
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) yi[f] = acc[e] / l; }
    if (lane == 0) lse[row] = m + logf(l);
}

// dq_i and Dlt_i (warp per query row)
extern "C" __global__ void attention_backward_dq(const float* q, const float* k, const float* v, const i64* pad, const float* y,
    const float* lse, const float* dy, float* dq, float* delta, int B, int L, int H, int dh)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H * L) return;
    int lane = threadIdx.x & 31, i = (int)(row % L), h = (int)((row / L) % H);
    i64 b = row / ((i64)L * H);
    int stride = H * dh;
    const i64* pb = pad ? pad + b * L : 0;
    AttRow r = att_row(pb, pb ? first_visible(pb, L) : 0, i, L);
    float scale = 1.f / sqrtf((float)dh);
    i64 o = (b * L + i) * stride + h * dh;
    float qi[ATT_PER_LANE], dyi[ATT_PER_LANE], acc[ATT_PER_LANE];
    att_load(q + o, dh, qi);
    att_load(dy + o, dh, dyi);
    float dlt = att_dot(dyi, y + o, dh);
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) acc[e] = 0.f;
    float l = lse[row];
    for (int j = 0; j < r.keys; j++)
    {
        const float* kj = k + (b * L + j) * stride + h * dh;
        float p = expf(att_dot(qi, kj, dh) * scale + att_bias(pb, r, i, j) - l);
        float ds = p * (att_dot(dyi, v + (b * L + j) * stride + h * dh, dh) - dlt);
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) acc[e] = fmaf(ds, kj[f], acc[e]); }
    }
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) dq[o + f] = acc[e] * scale; }
    if (lane == 0) delta[row] = dlt;
}

// dk_j, dv_j (warp per key row): over the query rows i whose key set holds j
extern "C" __global__ void attention_backward_dkv(const float* q, const float* k, const float* v, const i64* pad, const float* lse,
    const float* delta, const float* dy, float* dk, float* dv, int B, int L, int H, int dh)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H * L) return;
    int lane = threadIdx.x & 31, j = (int)(row % L), h = (int)((row / L) % H);
    i64 b = row / ((i64)L * H);
    int stride = H * dh;
    const i64* pb = pad ? pad + b * L : 0;
    int firstVisible = pb ? first_visible(pb, L) : 0;
    float scale = 1.f / sqrtf((float)dh);
    i64 o = (b * L + j) * stride + h * dh;
    float kj[ATT_PER_LANE], vj[ATT_PER_LANE], ak[ATT_PER_LANE], av[ATT_PER_LANE];
    att_load(k + o, dh, kj);
    att_load(v + o, dh, vj);
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) ak[e] = av[e] = 0.f;
    for (int i = pb ? 0 : j; i < L; i++)
    {
        AttRow r = att_row(pb, firstVisible, i, L);
        if (j >= r.keys) continue;
        i64 oi = (b * L + i) * stride + h * dh;
        i64 li = (b * H + h) * L + i;
        float p = expf(att_dot(kj, q + oi, dh) * scale + att_bias(pb, r, i, j) - lse[li]);
        float ds = p * (att_dot(vj, dy + oi, dh) - delta[li]);
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++)
        {
            int f = lane + 32 * e;
            if (f < dh) { ak[e] = fmaf(ds, q[oi + f], ak[e]); av[e] = fmaf(p, dy[oi + f], av[e]); }
        }
    }
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) { dk[o + f] = ak[e] * scale; dv[o + f] = av[e]; } }
}
