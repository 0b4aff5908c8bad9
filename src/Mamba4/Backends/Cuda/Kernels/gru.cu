// The GRU recurrence (Ops/Gru.cs; torch.nn.GRU, gates r, z, n), the element-wise part of each step fused into one
// kernel; the h_{t−1} W_hhᵀ products are cuBLAS GEMMs (CudaBackend.Gru.cs). Per step t, element (b, j):
//   r = σ(gi_r + gh_r + b_r),  z = σ(gi_z + gh_z + b_z),  hn = gh_n + b_n,  n = tanh(gi_n + r·hn)
//   h_t = n + z·(h_{t−1} − n)          (h_{−1} = h0, or 0: then gh = 0)
// gates[b, t] = (r, z, n, hn). Backward, g = dy_t + carry:
//   da_n = g(1 − z)(1 − n²),  da_r = da_n·hn·r(1 − r),  da_z = g(h_{t−1} − n)·z(1 − z)
//   dgi_t = (da_r, da_z, da_n),  dgh_t = (da_r, da_z, da_n·r),  carry = g·z  (+ dgh_t W_hh by GEMM after)

// gh: [B, 3H] (null: the zero state, no GEMM); prev: row b at prev + b·ldPrev (null: zero)
extern "C" __global__ void gru_forward_step(const float* gi, const float* gh, const float* bias, const float* prev, i64 ldPrev,
    float* y, float* gates, int B, int L, int H, int t)
{
    GRID_STRIDE(idx, (i64)B * H)
    {
        i64 b = idx / H;
        int j = (int)(idx % H);
        const float* giRow = gi + (b * L + t) * 3 * H;
        float ghr = gh ? gh[b * 3 * H + j] : 0.f, ghz = gh ? gh[b * 3 * H + H + j] : 0.f, ghn = gh ? gh[b * 3 * H + 2 * H + j] : 0.f;
        float ar = giRow[j] + ghr, az = giRow[H + j] + ghz, hn = ghn;
        if (bias) { ar += bias[j]; az += bias[H + j]; hn += bias[2 * H + j]; }
        float r = sigmoid_f(ar), z = sigmoid_f(az);
        float n = tanhf(fmaf(r, hn, giRow[2 * H + j]));
        float hp = prev ? prev[b * ldPrev + j] : 0.f;
        float* g = gates + (b * L + t) * 4 * H;
        g[j] = r; g[H + j] = z; g[2 * H + j] = n; g[3 * H + j] = hn;
        y[(b * L + t) * H + j] = fmaf(z, hp - n, n);
    }
}

// carry [B, H] in: gradient reaching h_t from step t+1; out: g·z (the GEMM adds dgh_t W_hh)
extern "C" __global__ void gru_backward_step(const float* gates, const float* dy, const float* prev, i64 ldPrev,
    float* carry, float* dgi, float* dgh, int B, int L, int H, int t)
{
    GRID_STRIDE(idx, (i64)B * H)
    {
        i64 b = idx / H;
        int j = (int)(idx % H);
        i64 row = b * L + t;
        const float* gr = gates + row * 4 * H;
        float r = gr[j], z = gr[H + j], n = gr[2 * H + j], hn = gr[3 * H + j];
        float g = dy[row * H + j] + carry[idx];
        float hp = prev ? prev[b * ldPrev + j] : 0.f;
        float dan = g * (1.f - z) * (1.f - n * n);
        float dar = dan * hn * r * (1.f - r);
        float daz = g * (hp - n) * z * (1.f - z);
        float* dgiRow = dgi + row * 3 * H;
        float* dghRow = dgh + row * 3 * H;
        dgiRow[j] = dar; dgiRow[H + j] = daz; dgiRow[2 * H + j] = dan;
        dghRow[j] = dar; dghRow[H + j] = daz; dghRow[2 * H + j] = dan * r;
        carry[idx] = g * z;
    }
}

// prev[b, t] = h_{t−1}: y[b, t−1] for t ≥ 1, h0[b] (or 0) for t = 0 — the right operand of dW_hh = Σ dgh_tᵀ h_{t−1}
extern "C" __global__ void gru_previous_states(const float* y, const float* h0, float* prev, int B, int L, int H)
{
    GRID_STRIDE(idx, (i64)B * L * H)
    {
        int j = (int)(idx % H);
        i64 bt = idx / H;
        int t = (int)(bt % L);
        i64 b = bt / L;
        prev[idx] = t > 0 ? y[idx - H] : (h0 ? h0[b * H + j] : 0.f);
    }
}
