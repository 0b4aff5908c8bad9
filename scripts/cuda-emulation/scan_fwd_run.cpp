// scan-fwd-check.sh's driver: random inputs, then selective_scan.cu's time-parallel forward kernel (KERNELS: the prepared
// source) on the grid CudaBackend.SelectiveScan.cs launches (256 threads, 32 channels a block), against the recurrence
// in double (inputs rounded to BF16 first where the kernel reads BF16). Prints the largest errors; exit 1 past the bound.
//   scan_fwd_run B L D MODE [noz] [nobias] [noh0] [nod] [nosoftplus] [nolast] [odd]   MODE: f32 | bf16 | obf16
//   odd: the B, C and sequence tensors 4 bytes off a 16-byte boundary (the kernels' plain-load paths)
#include "shim.h"
#include <atomic>
#include <cstdio>
#include <random>
#include <string>
alignas(16) inline float4 emu_smem[232448 / 16];
#include KERNELS

static float bf(float x) { return __uint_as_float((unsigned)emu_bf16(x) << 16); }
int main(int argc, char** argv)
{
    int B = atoi(argv[1]), L = atoi(argv[2]), D = atoi(argv[3]);
    std::string mode = argv[4];
    auto has = [&](const char* f) { for (int i = 5; i < argc; i++) if (std::string(argv[i]) == f) return true; return false; };
    const int N = 16, off = has("odd") ? 1 : 0;
    const bool in16 = mode == "bf16", out16 = mode != "f32";
    std::mt19937 rng(7);
    auto U = [&](size_t n, float lo, float hi) { std::uniform_real_distribution<float> d(lo, hi); std::vector<float> v(n); for (auto& x : v) { x = d(rng); if (in16) x = bf(x); } return v; };
    size_t bld = (size_t)B * L * D, bln = (size_t)B * L * N;
    auto u = U(bld, -1, 1), delta = U(bld, -3, 1), z = U(bld, -2, 2), Bm = U(bln, -1, 1), Cm = U(bln, -1, 1);
    std::vector<float> A(D * N), Dv(D), bias(D), h0((size_t)B * D * N);
    { std::uniform_real_distribution<float> d(-2, -0.2f); for (auto& x : A) x = d(rng); }
    { std::uniform_real_distribution<float> d(-1, 1); for (auto& x : Dv) x = d(rng); for (auto& x : h0) x = d(rng); }
    { std::uniform_real_distribution<float> d(-0.5f, 0.5f); for (auto& x : bias) x = d(rng); }
    if (has("nosoftplus")) for (auto& x : delta) { x = std::fabs(x) * 0.3f + 0.01f; if (in16) x = bf(x); }   // dt as given: positive
    const bool withZ = !has("noz"), withBias = !has("nobias"), withH0 = !has("noh0"), withD = !has("nod"), sp = !has("nosoftplus"), withLast = !has("nolast");
    // device-side copies in the kernel's element type (F32 or BF16 bits), optionally 4 bytes off alignment
    auto dev = [&](const std::vector<float>& v) -> void* {
        char* mem = (char*)aligned_alloc(16, v.size() * 4 + 32) + 4 * off;
        if (in16) for (size_t i = 0; i < v.size(); i++) ((unsigned short*)mem)[i] = emu_bf16(v[i]);
        else std::memcpy(mem, v.data(), v.size() * 4);
        return mem; };
    ScanParams p{};
    p.u = (const float*)dev(u); p.delta = (const float*)dev(delta); p.z = withZ ? (const float*)dev(z) : nullptr;
    p.B = (const float*)dev(Bm); p.C = (const float*)dev(Cm);
    p.A = A.data(); p.D = withD ? Dv.data() : nullptr; p.bias = withBias ? bias.data() : nullptr; p.h0 = withH0 ? h0.data() : nullptr;
    std::vector<float> yF(bld, NAN), last((size_t)B * D * N, NAN);
    std::vector<unsigned short> y16(bld, 0x7fc0);
    p.y = out16 ? (float*)y16.data() : yF.data();
    p.last = withLast ? last.data() : nullptr;
    p.batch = B; p.L = L; p.Dch = D; p.N = N; p.chunkLen = L; p.chunks = 1; p.tpc = 1; p.selective = 1; p.softplus = sp;
    dim3_ grid{(unsigned)((D + 31) / 32), 1, (unsigned)B};
    launch(grid, [&] {
        if (mode == "f32") scan_forward_lanes(p);
        else if (mode == "bf16") scan_forward_lanes_bf16(p);
        else scan_forward_lanes_obf16(p);
    });
    // reference in double
    double ey = 0, my = 0, eh = 0, mh = 0; long bad = 0;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
        {
            double h[16];
            for (int n = 0; n < N; n++) h[n] = withH0 ? h0[((size_t)b * D + d) * N + n] : 0;
            for (int t = 0; t < L; t++)
            {
                size_t i = ((size_t)b * L + t) * D + d;
                double raw = delta[i] + (withBias ? bias[d] : 0), dt = sp ? (raw > 20 ? raw : std::log1p(std::exp(raw))) : raw;
                double yv = withD ? Dv[d] * (double)u[i] : 0;
                for (int n = 0; n < N; n++)
                {
                    h[n] = std::exp(dt * A[d * N + n]) * h[n] + dt * Bm[((size_t)b * L + t) * N + n] * u[i];
                    yv += Cm[((size_t)b * L + t) * N + n] * h[n];
                }
                if (withZ) yv *= z[i] / (1 + std::exp(-(double)z[i]));
                double got = out16 ? __uint_as_float((unsigned)y16[i] << 16) : yF[i];
                double err = std::fabs(got - yv), tol = out16 ? 0.0079 * std::fabs(yv) + 1e-6 : 2e-5 * (1 + std::fabs(yv));
                if (!(err <= tol)) { if (bad++ < 5) printf("  y[b %d, t %d, d %d] = %.7g, reference %.7g\n", b, t, d, got, yv); }
                ey = std::max(ey, err); my = std::max(my, std::fabs(yv));
            }
            if (withLast)
                for (int n = 0; n < N; n++)
                {
                    double got = last[((size_t)b * D + d) * N + n], err = std::fabs(got - h[n]);
                    if (!(err <= 2e-5 * (1 + std::fabs(h[n])))) { if (bad++ < 5) printf("  last[b %d, d %d, n %d] = %.7g, reference %.7g\n", b, d, n, got, h[n]); }
                    eh = std::max(eh, err); mh = std::max(mh, std::fabs(h[n]));
                }
        }
    printf("max |y error| %.3g (max |y| %.3g), max |last error| %.3g (max |h| %.3g)%s\n", ey, my, eh, mh, bad ? " FAILED" : "");
    return bad ? 1 : 0;
}
