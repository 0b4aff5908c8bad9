// step-check.sh's driver: mamba_step.cu's fused decoding step (KERNELS: the prepared source) — in_proj, x_proj, scan,
// out_proj and the head with its arg-max — for a few steps of one layer, on the grids and block sizes
// CudaBackend.MambaStep.cs launches (or a small grid, so that warps loop over rows), from seeded random weights and
// states. Each step's new states, output and logits are checked against the step computed in double from the same
// (rounded) weights (within 1e-5 of the largest value; the ids: the reference's arg-max unless its top two are within
// that), and every output of every step (xz, u, dbc, y, out, the states, logits, ids) is written to FILE, to be compared
// bit for bit with another version of the file. Exit 1 past the bound.
//   step_run BATCH D E R N K KIND VEC SMALLGRID BIASES FILE     KIND: 0 F32, 1 BF16 weights; BIASES: 0 none, 1 all
#include "shim.h"
#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#define __align__(n) alignas(n)
alignas(16) inline float emu_dyn[48 * 1024 / 4];
using std::isfinite;
#include KERNELS

int main(int argc, char** argv)
{
    if (argc != 12) { fprintf(stderr, "usage: step_run BATCH D E R N K KIND VEC SMALLGRID BIASES FILE\n"); return 2; }
    int batch = atoi(argv[1]), d = atoi(argv[2]), e = atoi(argv[3]), r = atoi(argv[4]), n = atoi(argv[5]), K = atoi(argv[6]);
    int kind = atoi(argv[7]), vec = atoi(argv[8]), small = atoi(argv[9]), biases = atoi(argv[10]);
    const int vocab = 300, xRows = r + 2 * n, steps = 3;
    std::mt19937 rng(11);
    auto U = [&](size_t m, float lo, float hi) { std::uniform_real_distribution<float> g(lo, hi); std::vector<float> v(m); for (auto& x : v) x = g(rng); return v; };
    // weights: F32 or their BF16 bits (the kernels' KIND 1), each in its own aligned buffer
    // the reference reads the weights as the kernels do (BF16: rounded)
    std::vector<std::vector<float>> asRead;
    auto W = [&](size_t m, float scale) -> const void* {
        auto v = U(m, -scale, scale);
        if (kind == 1) for (auto& x : v) x = __uint_as_float((unsigned)emu_bf16(x) << 16);
        asRead.push_back(v);
        if (kind == 0) { float* p = (float*)aligned_alloc(16, m * 4 + 16); std::memcpy(p, v.data(), m * 4); return p; }
        unsigned short* p = (unsigned short*)aligned_alloc(16, m * 2 + 16);
        for (size_t i = 0; i < m; i++) p[i] = emu_bf16(v[i]);
        return p; };
    const void* inW = W((size_t)2 * e * d, 0.2f); const void* xW = W((size_t)xRows * e, 0.2f);
    const void* dtW = W((size_t)e * r, 0.5f); const void* outW = W((size_t)d * e, 0.2f); const void* headW = W((size_t)vocab * d, 0.3f);
    const std::vector<float>&Win = asRead[0], &Wx = asRead[1], &Wdt = asRead[2], &Wout = asRead[3], &Whead = asRead[4];
    auto normW = U(d, 0.5f, 1.5f), finalNorm = U(d, 0.5f, 1.5f), convW = U((size_t)e * K, -0.5f, 0.5f), convB = U(e, -0.2f, 0.2f);
    auto inBias = U(2 * e, -0.1f, 0.1f), outBias = U(d, -0.1f, 0.1f), dtBias = U(e, -3, -1), aLog = U((size_t)e * n, -1, 1.5f), Dv = U(e, -1, 1);
    auto convState = U((size_t)batch * e * (K - 1), -1, 1), ssm = U((size_t)batch * e * n, -1, 1);
    const float* B_ = biases ? inBias.data() : nullptr;
    const float* OB = biases ? outBias.data() : nullptr;
    const float* CB = biases ? convB.data() : nullptr;
    const float* D_ = biases ? Dv.data() : nullptr;
    std::vector<double> refConv(convState.begin(), convState.end()), refSsm(ssm.begin(), ssm.end());
    long bad = 0;
    double worst = 0;
    // |got − ref| within 1e-5 of the largest |ref| of the set (relative to 1 at least)
    auto check = [&](const char* what, int step, const float* got, const std::vector<double>& ref) {
        double m = 1; for (double v : ref) m = std::max(m, std::fabs(v));
        for (size_t i = 0; i < ref.size(); i++)
        {
            double err = std::fabs(got[i] - ref[i]) / m;
            worst = std::max(worst, err);
            if (!(err <= 1e-5) && bad++ < 5) printf("  step %d: %s[%zu] = %.7g, reference %.7g\n", step, what, i, got[i], ref[i]);
        }
    };
    auto silu = [](double x) { return x / (1 + std::exp(-x)); };
    std::vector<float> xz((size_t)batch * 2 * e), u((size_t)batch * e), dbc((size_t)batch * xRows), y((size_t)batch * e), out((size_t)batch * d);
    std::vector<float> logits((size_t)batch * vocab);
    std::vector<int2> partials((size_t)batch * 64);
    std::vector<i64> ids(batch);
    unsigned done = 0;
    auto grid = [&](int rows) { return dim3_{(unsigned)(small ? 3 : (rows + 3) / 4), 1, 1}; };
    FILE* f = fopen(argv[11], "wb");
    auto dump = [&](const void* p, size_t bytes) { fwrite(p, 1, bytes, f); };
    for (int s = 0; s < steps; s++)
    {
        auto h = U((size_t)batch * d, -2, 2);
        launch(grid(2 * e), [&] {
            if (kind == 0) mamba_step_in_proj_f32(h.data(), normW.data(), 1e-5f, inW, B_, convState.data(), convW.data(), CB, xz.data(), u.data(), batch, d, 2 * e, K, vec);
            else mamba_step_in_proj_bf16(h.data(), normW.data(), 1e-5f, inW, B_, convState.data(), convW.data(), CB, xz.data(), u.data(), batch, d, 2 * e, K, vec);
        }, 128);
        launch(grid(xRows), [&] {
            if (kind == 0) mamba_step_x_proj_f32(u.data(), xW, dbc.data(), batch, e, xRows, vec);
            else mamba_step_x_proj_bf16(u.data(), xW, dbc.data(), batch, e, xRows, vec);
        }, 128);
        launch(dim3_{(unsigned)(((long)batch * e * 16 + 255) / 256), 1, 1}, [&] {
            if (kind == 0) mamba_step_scan_f32(xz.data(), convState.data(), u.data(), dbc.data(), dtW, dtBias.data(), aLog.data(), D_, ssm.data(), y.data(), 0, batch, e, K, r, n);
            else mamba_step_scan_bf16(xz.data(), convState.data(), u.data(), dbc.data(), dtW, dtBias.data(), aLog.data(), D_, ssm.data(), y.data(), 0, batch, e, K, r, n);
        }, 256);
        launch(grid(d), [&] {
            if (kind == 0) mamba_step_out_proj_f32(y.data(), outW, OB, h.data(), out.data(), batch, e, d, vec);
            else mamba_step_out_proj_bf16(y.data(), outW, OB, h.data(), out.data(), batch, e, d, vec);
        }, 128);
        const unsigned headBlocks = small ? 2 : 5;
        launch(dim3_{headBlocks, 1, 1}, [&] {
            if (batch == 1) (kind == 0 ? mamba_step_head1_f32 : mamba_step_head1_bf16)(out.data(), finalNorm.data(), 1e-5f, headW, logits.data(), partials.data(), &done, ids.data(), batch, d, vocab, vec);
            else (kind == 0 ? mamba_step_head_f32 : mamba_step_head_bf16)(out.data(), finalNorm.data(), 1e-5f, headW, logits.data(), partials.data(), &done, ids.data(), batch, d, vocab, vec);
        }, 128);
        // the step in double, from the same weights and the reference's own states
        std::vector<double> refOut((size_t)batch * d), refLogits((size_t)batch * vocab);
        for (int b = 0; b < batch; b++)
        {
            auto rms = [&](const auto* x, const std::vector<float>& w, std::vector<double>& o) {
                double ss = 0; for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
                double rr = 1 / std::sqrt(ss / d + 1e-5);
                o.resize(d); for (int i = 0; i < d; i++) o[i] = x[i] * rr * w[i]; };
            std::vector<double> xn, xzr(2 * e), ur(e), dbcr(xRows), yr(e);
            rms(h.data() + (size_t)b * d, normW, xn);
            for (int row = 0; row < 2 * e; row++)
            {
                double acc = B_ ? B_[row] : 0; for (int i = 0; i < d; i++) acc += (double)Win[(size_t)row * d + i] * xn[i];
                xzr[row] = acc;
            }
            for (int c = 0; c < e; c++)
            {
                double* st = &refConv[((size_t)b * e + c) * (K - 1)];
                double acc = CB ? CB[c] : 0;
                for (int j = 0; j < K - 1; j++) acc += (double)convW[(size_t)c * K + j] * st[j];
                ur[c] = silu(acc + (double)convW[(size_t)c * K + K - 1] * xzr[c]);
                for (int j = 0; j + 1 < K - 1; j++) st[j] = st[j + 1];
                if (K > 1) st[K - 2] = xzr[c];
            }
            for (int row = 0; row < xRows; row++) { double acc = 0; for (int c = 0; c < e; c++) acc += (double)Wx[(size_t)row * e + c] * ur[c]; dbcr[row] = acc; }
            for (int c = 0; c < e; c++)
            {
                double raw = dtBias[c]; for (int j = 0; j < r; j++) raw += (double)Wdt[(size_t)c * r + j] * dbcr[j];
                double dt = raw > 20 ? raw : std::log1p(std::exp(raw)), acc = D_ ? D_[c] * ur[c] : 0;
                for (int q = 0; q < n; q++)
                {
                    double& hs = refSsm[((size_t)b * e + c) * n + q];
                    hs = std::exp(dt * -std::exp((double)aLog[(size_t)c * n + q])) * hs + dt * dbcr[r + q] * ur[c];
                    acc += dbcr[r + n + q] * hs;
                }
                yr[c] = acc * silu(xzr[e + c]);
            }
            for (int row = 0; row < d; row++)
            {
                double acc = (double)h[(size_t)b * d + row] + (OB ? OB[row] : 0);
                for (int c = 0; c < e; c++) acc += (double)Wout[(size_t)row * e + c] * yr[c];
                refOut[(size_t)b * d + row] = acc;
            }
            std::vector<double> xf;
            rms(refOut.data() + (size_t)b * d, finalNorm, xf);
            int best = 0; double top = -1e300, second = -1e300;
            for (int v = 0; v < vocab; v++)
            {
                double acc = 0; for (int i = 0; i < d; i++) acc += (double)Whead[(size_t)v * d + i] * xf[i];
                refLogits[(size_t)b * vocab + v] = acc;
                if (acc > top) { second = top; top = acc; best = v; } else if (acc > second) second = acc;
            }
            if (ids[b] != best && top - second > 1e-5 * std::max(1.0, std::fabs(top)) && bad++ < 5) printf("  step %d: id[%d] = %lld, reference %d\n", s, b, (long long)ids[b], best);
        }
        check("out", s, out.data(), refOut);
        check("logits", s, logits.data(), refLogits);
        check("ssm state", s, ssm.data(), refSsm);
        check("conv state", s, convState.data(), refConv);
        dump(xz.data(), xz.size() * 4); dump(u.data(), u.size() * 4); dump(dbc.data(), dbc.size() * 4); dump(y.data(), y.size() * 4);
        dump(out.data(), out.size() * 4); dump(convState.data(), convState.size() * 4); dump(ssm.data(), ssm.size() * 4);
        dump(logits.data(), logits.size() * 4); dump(ids.data(), ids.size() * 8);
    }
    fclose(f);
    double m = 0; for (float v : out) m = std::max(m, (double)std::fabs(v));
    printf("ids");
    for (auto i : ids) printf(" %lld", (long long)i);
    printf(", max |out| %.3g, largest error %.2g of the largest value%s\n", m, worst, bad ? " FAILED" : "");
    return bad ? 1 : 0;
}
