// A plain C baseline for batch-1 Mamba-1 decoding, written for Mamba4's generate benchmark: the 130M shape
// (d_model 768, 24 layers, d_inner 1536, d_state 16, dt_rank 48, d_conv 4, vocabulary 50280), random F32
// weights, one recurrent step per token exactly as the model defines it (RMSNorm, in_proj, causal-conv step + SiLU,
// x_proj, dt_proj + softplus, selective-scan step, D skip, SiLU(z) gate, out_proj, residual; norm_f, tied head,
// greedy arg-max). Matrix-vector products are row-parallel under OpenMP; the compiler vectorises the dot products.
// Build: cc -O3 -march=native -fopenmp mamba_decode.c -lm.  Run: ./a.out WARMUP STEPS  → one JSON line.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { D = 768, L = 24, DI = 1536, N = 16, R = 48, K = 4, V = 50280 };

typedef struct {
    float *norm, *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *a_log, *dskip, *out_proj;
    float *conv_state, *ssm_state;
} Layer;

static uint64_t rng = 88172645463325252ull;
static float uniform(float scale) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return scale * ((float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
}
static float *alloc(size_t n, float scale) {
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    for (size_t i = 0; i < n; i++) p[i] = uniform(scale);
    return p;
}
static float *zeros(size_t n) { float *p = alloc(n, 0.0f); return p; }

// y[rows] = W[rows, cols] · x[cols]
static void matvec(const float *restrict w, const float *restrict x, float *restrict y, int rows, int cols) {
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * cols;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int c = 0; c < cols; c++) s += row[c] * x[c];
        y[r] = s;
    }
}
static void rmsnorm(const float *x, const float *w, float *y) {
    float ss = 0.0f;
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / D + 1e-5f);
    for (int i = 0; i < D; i++) y[i] = x[i] * r * w[i];
}
static float silu(float v) { return v / (1.0f + expf(-v)); }
static float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

int main(int argc, char **argv) {
    int warmup = argc > 1 ? atoi(argv[1]) : 16, steps = argc > 2 ? atoi(argv[2]) : 64;
    float *embed = alloc((size_t)V * D, 0.02f), *norm_f = alloc(D, 1.0f);
    Layer layers[L];
    for (int l = 0; l < L; l++) {
        Layer *p = &layers[l];
        p->norm = alloc(D, 1.0f); p->in_proj = alloc((size_t)2 * DI * D, 0.03f);
        p->conv_w = alloc(DI * K, 0.3f); p->conv_b = alloc(DI, 0.1f);
        p->x_proj = alloc((size_t)(R + 2 * N) * DI, 0.02f); p->dt_w = alloc(DI * R, 0.1f); p->dt_b = alloc(DI, 0.5f);
        p->a_log = alloc(DI * N, 0.5f); p->dskip = alloc(DI, 1.0f); p->out_proj = alloc((size_t)D * DI, 0.02f);
        p->conv_state = zeros(DI * K); p->ssm_state = zeros(DI * N);
    }
    float *h = zeros(D), *xn = zeros(D), *xz = zeros(2 * DI), *xc = zeros(DI), *dbc = zeros(R + 2 * N),
          *dt = zeros(DI), *y = zeros(DI), *out = zeros(D), *logits = zeros(V);
    int token = 1;
    struct timespec t0, t1;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < D; i++) h[i] = embed[(size_t)token * D + i];
        for (int l = 0; l < L; l++) {
            Layer *p = &layers[l];
            rmsnorm(h, p->norm, xn);
            matvec(p->in_proj, xn, xz, 2 * DI, D);
            for (int c = 0; c < DI; c++) {          // causal conv step: shift the window, add the new input
                float *st = p->conv_state + c * K;
                for (int k = 0; k < K - 1; k++) st[k] = st[k + 1];
                st[K - 1] = xz[c];
                float v = p->conv_b[c];
                for (int k = 0; k < K; k++) v += st[k] * p->conv_w[c * K + k];
                xc[c] = silu(v);
            }
            matvec(p->x_proj, xc, dbc, R + 2 * N, DI);
            matvec(p->dt_w, dbc, dt, DI, R);
            const float *B = dbc + R, *C = dbc + R + N;
            for (int c = 0; c < DI; c++) {          // h = exp(Δ·A) h + Δ·B·x;  y = C·h + D·x, gated by SiLU(z)
                float delta = softplus(dt[c] + p->dt_b[c]), x = xc[c], acc = 0.0f;
                float *st = p->ssm_state + c * N;
                for (int n = 0; n < N; n++) {
                    float a = -expf(p->a_log[c * N + n]);
                    st[n] = expf(delta * a) * st[n] + delta * B[n] * x;
                    acc += C[n] * st[n];
                }
                y[c] = (acc + p->dskip[c] * x) * silu(xz[DI + c]);
            }
            matvec(p->out_proj, y, out, D, DI);
            for (int i = 0; i < D; i++) h[i] += out[i];
        }
        rmsnorm(h, norm_f, xn);
        matvec(embed, xn, logits, V, D);
        int best = 0;
        for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
        token = best;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("{\"tokens_per_s\": %.3f, \"ms_per_token\": %.4f, \"last_token\": %d}\n", steps / seconds, seconds / steps * 1000, token);
    return 0;
}
