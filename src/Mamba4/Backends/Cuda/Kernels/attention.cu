// Causal multi-head attention (Ops/Attention.cs), one warp per query row (forward, dq) or key row (dk, dv);
// each lane holds up to 4 of the head's dHead ≤ 128 features. q, k, v, y: [B, L, H·Dh]; lse [B, H, L].
//   s_ij = q_i·k_j/√Dh + bias_ij,   lse_i = log Σ_j exp(s_ij),   p_ij = exp(s_ij − lse_i),   y_i = Σ_j p_ij v_j
//   Dlt_i = dy_i·y_i,  ds_ij = p_ij (dy_i·v_j − Dlt_i),  dq_i = Σ_j ds_ij k_j/√Dh,  dk_j = Σ_i ds_ij q_i/√Dh,  dv_j = Σ_i p_ij dy_i
// Non-causal (causal = 0): every key j < L; with ids, RecBole's bidirectional mask: −10000 where ids[j] = 0 (no bias
// when every id is padding), as the CPU backend.
// Dropout on the probabilities (threshold ≠ 0; AttentionSpec.DropoutP): key j of row r = (b·H + h)·L + i is kept iff
// split_mix64(seed, r·L + j) ≥ threshold, as the CPU backend; kept weights are scaled by keep = 1/(1 − p):
//   y_i = Σ_j p_ij m_ij keep v_j,   ds_ij = p_ij (m_ij keep dy_i·v_j − Dlt_i),   dv_j = Σ_i p_ij m_ij keep dy_i
// (Dlt_i = dy_i·y_i with the dropped y; lse is that of the full softmax: the forward sums p_ij before the mask.)
// Keys of row i: without padding ids, j ≤ i. With ids (RecBole's mask): if some j ≤ i has ids[j] ≠ 0, every key j < L
// with bias 0 where j ≤ i and ids[j] ≠ 0, else −10000 (masked weights underflow to 0 unless scores are ~10⁴);
// if none, every key with bias 0 (a plain softmax over all L keys), as the CPU backend.
#define ATT_PER_LANE 4
#define ATT_MASK -10000.f

struct AttRow
{
    int keys;         // keys 0 … keys−1 are considered
    bool biased;      // apply the −10000 bias to masked keys
    bool future;      // keys j > i are masked too (causal)
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

struct AttDropout
{
    u64 seed, threshold;   // threshold 0: no dropout
    float keep;            // 1/(1 − p)
};

// m_ij · keep (1 without dropout)
__device__ __forceinline__ float att_keep(const AttDropout& d, i64 row, int L, int j)
{
    if (d.threshold == 0) return 1.f;
    return split_mix64(d.seed, (u64)(row * L + j)) >= d.threshold ? d.keep : 0.f;
}

__device__ __forceinline__ AttRow att_row(const i64* pad, int firstVisible, int i, int L, int causal)
{
    AttRow r;
    r.future = causal != 0;
    if (!causal) { r.keys = L; r.biased = pad && firstVisible < L; }
    else if (!pad) { r.keys = i + 1; r.biased = false; }
    else if (firstVisible > i) { r.keys = L; r.biased = false; }
    else { r.keys = L; r.biased = true; }
    return r;
}

__device__ __forceinline__ float att_bias(const i64* pad, const AttRow& r, int i, int j)
{
    return (r.biased && ((r.future && j > i) || pad[j] == 0)) ? ATT_MASK : 0.f;
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
// y may be null (lse only)
extern "C" __global__ void attention_forward(AttDropout drop, const float* q, const float* k, const float* v, const i64* pad, float* y, float* lse,
    int B, int L, int H, int dh, int causal)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H * L) return;
    int lane = threadIdx.x & 31, i = (int)(row % L), h = (int)((row / L) % H);
    i64 b = row / ((i64)L * H);
    int stride = H * dh;
    const i64* pb = pad ? pad + b * L : 0;
    AttRow r = att_row(pb, pb ? first_visible(pb, L) : 0, i, L, causal);
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
        if (y)
        {
            float pv = p * att_keep(drop, row, L, j);
            const float* vj = v + (b * L + j) * stride + h * dh;
            #pragma unroll
            for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; acc[e] = acc[e] * corr + (f < dh ? pv * vj[f] : 0.f); }
        }
        m = mNew;
    }
    if (y)
    {
        float* yi = y + (b * L + i) * stride + h * dh;
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) yi[f] = acc[e] / l; }
    }
    if (lane == 0) lse[row] = m + logf(l);
}

// dq_i and Dlt_i (warp per query row)
extern "C" __global__ void attention_backward_dq(AttDropout drop, const float* q, const float* k, const float* v, const i64* pad, const float* y,
    const float* lse, const float* dy, float* dq, float* delta, int B, int L, int H, int dh, int causal)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H * L) return;
    int lane = threadIdx.x & 31, i = (int)(row % L), h = (int)((row / L) % H);
    i64 b = row / ((i64)L * H);
    int stride = H * dh;
    const i64* pb = pad ? pad + b * L : 0;
    AttRow r = att_row(pb, pb ? first_visible(pb, L) : 0, i, L, causal);
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
        float ds = p * (att_dot(dyi, v + (b * L + j) * stride + h * dh, dh) * att_keep(drop, row, L, j) - dlt);
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) acc[e] = fmaf(ds, kj[f], acc[e]); }
    }
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) dq[o + f] = acc[e] * scale; }
    if (lane == 0) delta[row] = dlt;
}

// dk_j, dv_j (warp per key row): over the query rows i whose key set holds j
extern "C" __global__ void attention_backward_dkv(AttDropout drop, const float* q, const float* k, const float* v, const i64* pad, const float* lse,
    const float* delta, const float* dy, float* dk, float* dv, int B, int L, int H, int dh, int causal)
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
    for (int i = (pb || !causal) ? 0 : j; i < L; i++)
    {
        AttRow r = att_row(pb, firstVisible, i, L, causal);
        if (j >= r.keys) continue;
        i64 oi = (b * L + i) * stride + h * dh;
        i64 li = (b * H + h) * L + i;
        float p = expf(att_dot(kj, q + oi, dh) * scale + att_bias(pb, r, i, j) - lse[li]);
        float pk = p * att_keep(drop, li, L, j);
        float ds = p * (att_dot(vj, dy + oi, dh) * att_keep(drop, li, L, j) - delta[li]);
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++)
        {
            int f = lane + 32 * e;
            if (f < dh) { ak[e] = fmaf(ds, q[oi + f], ak[e]); av[e] = fmaf(pk, dy[oi + f], av[e]); }
        }
    }
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) { dk[o + f] = ak[e] * scale; dv[o + f] = av[e]; } }
}

// Decoding with a KV cache (AttentionStep): one warp per (b, h); q, y [B, H·Dh]; kc, vc [B, capacity, H·Dh], keys 0 … length−1.
//   s_j = q·k_j/√Dh,   y = Σ_j softmax(s)_j v_j   (online softmax, as attention_forward)
extern "C" __global__ void attention_step(const float* q, const float* kc, const float* vc, float* y, int B, int H, int dh, int capacity, int length)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (i64)B * H) return;
    int lane = threadIdx.x & 31, h = (int)(row % H);
    i64 b = row / H;
    int stride = H * dh;
    float scale = 1.f / sqrtf((float)dh);
    float qi[ATT_PER_LANE], acc[ATT_PER_LANE];
    att_load(q + b * stride + h * dh, dh, qi);
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) acc[e] = 0.f;
    float m = NEG_INF, l = 0.f;
    for (int j = 0; j < length; j++)
    {
        i64 o = (b * capacity + j) * stride + h * dh;
        float s = att_dot(qi, kc + o, dh) * scale;
        float mNew = fmaxf(m, s), corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
        #pragma unroll
        for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; acc[e] = acc[e] * corr + (f < dh ? p * vc[o + f] : 0.f); }
        m = mNew;
    }
    float* yi = y + b * stride + h * dh;
    #pragma unroll
    for (int e = 0; e < ATT_PER_LANE; e++) { int f = lane + 32 * e; if (f < dh) yi[f] = length > 0 ? acc[e] / l : 0.f; }
}
