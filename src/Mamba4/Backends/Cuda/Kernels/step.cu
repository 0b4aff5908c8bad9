// The recurrent step for decoding (IBackend.CausalConv1dStep / SelectiveScanStep), one thread per (stream, channel).
// conv:  y = b + Σ_{j<K−1} w[c, j]·state[j] + w[c, K−1]·x,  then state ← (state[1:], x);  y = silu(y) optional
// scan:  dt = softplus(δ + bias);  h ← exp(dt·A)·h + dt·B·u;  y = ⟨C, h⟩ + D·u;  y ·= silu(z)

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
