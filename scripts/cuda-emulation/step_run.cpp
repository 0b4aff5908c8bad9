// step-check.sh's driver: mamba_step.cu's fused decoding step (KERNELS: the prepared source) — in_proj, x_proj, scan,
// out_proj and the head with its arg-max — for a few steps of one layer, on the grids and block sizes
// CudaBackend.MambaStep.cs launches (or a small grid, so that warps loop over rows), from seeded random weights and
// states. Writes every output of every step (xz, u, dbc, y, out, the states, logits, ids) to FILE, to be compared bit
// for bit with another version of the file.
//   step_run BATCH D E R N K KIND VEC SMALLGRID BIASES FILE     KIND: 0 F32, 1 BF16 weights; BIASES: 0 none, 1 all
#include "shim.h"
#include <atomic>
#include <cstdio>
#include <random>
#include <string>
struct uint4 { unsigned x, y, z, w; };
struct int2 { int x, y; };
inline int2 make_int2(int a, int b) { return {a, b}; }
#define __align__(n) alignas(n)
inline float emu_half(unsigned short) { return 0.f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline unsigned short emu_bf16(float x) { unsigned u = __float_as_uint(x); return (unsigned short)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
alignas(16) inline float emu_dyn[48 * 1024 / 4];
template <class T> T __ldg(const T* p) { return *p; }
template <class T> T __ldcg(const T* p) { return *p; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __trap() { std::abort(); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
template <class T> T exch_to(T v, int src)
{
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint64_t bits = 0; std::memcpy(&bits, &v, sizeof(T));
    warpBuf[w][lane] = bits; warpBar[w]->arrive_and_wait();
    T r = v; if (src >= 0) std::memcpy(&r, &warpBuf[w][src], sizeof(T));
    warpBar[w]->arrive_and_wait();
    return r;
}
template <class T> T __shfl_xor_sync(unsigned, T v, int o, int width) { int l = threadIdx.x & 31; return exch_to(v, (l / width) * width + ((l % width) ^ o)); }
using std::isfinite;
#include KERNELS

// shim.h's launch with a block of `threads` (a multiple of 32, ≤ 256)
static void launch_n(dim3_ grid, unsigned threads, std::function<void()> kernel)
{
    gridDim = grid; blockDim = {threads, 1, 1};
    std::barrier<> bb(threads); blockBar = &bb;
    for (int i = 0; i < 8; i++) warpBar[i] = new std::barrier<>(32);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (unsigned x = 0; x < grid.x; x++) { blockIdx = {x, 0, 0}; kernel(); bb.arrive_and_wait(); }
        });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 8; i++) delete warpBar[i];
}

int main(int argc, char** argv)
{
    if (argc != 12) { fprintf(stderr, "usage: step_run BATCH D E R N K KIND VEC SMALLGRID BIASES FILE\n"); return 2; }
    int batch = atoi(argv[1]), d = atoi(argv[2]), e = atoi(argv[3]), r = atoi(argv[4]), n = atoi(argv[5]), K = atoi(argv[6]);
    int kind = atoi(argv[7]), vec = atoi(argv[8]), small = atoi(argv[9]), biases = atoi(argv[10]);
    const int vocab = 300, xRows = r + 2 * n, steps = 3;
    std::mt19937 rng(11);
    auto U = [&](size_t m, float lo, float hi) { std::uniform_real_distribution<float> g(lo, hi); std::vector<float> v(m); for (auto& x : v) x = g(rng); return v; };
    // weights: F32 or their BF16 bits (the kernels' KIND 1), each in its own aligned buffer
    std::vector<std::vector<unsigned short>> keep16;
    auto W = [&](size_t m, float scale) -> const void* {
        auto v = U(m, -scale, scale);
        if (kind == 0) { float* p = (float*)aligned_alloc(16, m * 4 + 16); std::memcpy(p, v.data(), m * 4); return p; }
        unsigned short* p = (unsigned short*)aligned_alloc(16, m * 2 + 16);
        for (size_t i = 0; i < m; i++) p[i] = emu_bf16(v[i]);
        return p; };
    const void* inW = W((size_t)2 * e * d, 0.2f); const void* xW = W((size_t)xRows * e, 0.2f);
    const void* dtW = W((size_t)e * r, 0.5f); const void* outW = W((size_t)d * e, 0.2f); const void* headW = W((size_t)vocab * d, 0.3f);
    auto normW = U(d, 0.5f, 1.5f), finalNorm = U(d, 0.5f, 1.5f), convW = U((size_t)e * K, -0.5f, 0.5f), convB = U(e, -0.2f, 0.2f);
    auto inBias = U(2 * e, -0.1f, 0.1f), outBias = U(d, -0.1f, 0.1f), dtBias = U(e, -3, -1), aLog = U((size_t)e * n, -1, 1.5f), Dv = U(e, -1, 1);
    auto convState = U((size_t)batch * e * (K - 1), -1, 1), ssm = U((size_t)batch * e * n, -1, 1);
    const float* B_ = biases ? inBias.data() : nullptr;
    const float* OB = biases ? outBias.data() : nullptr;
    const float* CB = biases ? convB.data() : nullptr;
    const float* D_ = biases ? Dv.data() : nullptr;
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
        launch_n(grid(2 * e), 128, [&] {
            if (kind == 0) mamba_step_in_proj_f32(h.data(), normW.data(), 1e-5f, inW, B_, convState.data(), convW.data(), CB, xz.data(), u.data(), batch, d, 2 * e, K, vec);
            else mamba_step_in_proj_bf16(h.data(), normW.data(), 1e-5f, inW, B_, convState.data(), convW.data(), CB, xz.data(), u.data(), batch, d, 2 * e, K, vec);
        });
        launch_n(grid(xRows), 128, [&] {
            if (kind == 0) mamba_step_x_proj_f32(u.data(), xW, dbc.data(), batch, e, xRows, vec);
            else mamba_step_x_proj_bf16(u.data(), xW, dbc.data(), batch, e, xRows, vec);
        });
        launch_n(dim3_{(unsigned)(((long)batch * e * 16 + 255) / 256), 1, 1}, 256, [&] {
            if (kind == 0) mamba_step_scan_f32(xz.data(), convState.data(), u.data(), dbc.data(), dtW, dtBias.data(), aLog.data(), D_, ssm.data(), y.data(), 0, batch, e, K, r, n);
            else mamba_step_scan_bf16(xz.data(), convState.data(), u.data(), dbc.data(), dtW, dtBias.data(), aLog.data(), D_, ssm.data(), y.data(), 0, batch, e, K, r, n);
        });
        launch_n(grid(d), 128, [&] {
            if (kind == 0) mamba_step_out_proj_f32(y.data(), outW, OB, h.data(), out.data(), batch, e, d, vec);
            else mamba_step_out_proj_bf16(y.data(), outW, OB, h.data(), out.data(), batch, e, d, vec);
        });
        const unsigned headBlocks = small ? 2 : 5;
        launch_n(dim3_{headBlocks, 1, 1}, 128, [&] {
            if (batch == 1) (kind == 0 ? mamba_step_head1_f32 : mamba_step_head1_bf16)(out.data(), finalNorm.data(), 1e-5f, headW, logits.data(), partials.data(), &done, ids.data(), batch, d, vocab, vec);
            else (kind == 0 ? mamba_step_head_f32 : mamba_step_head_bf16)(out.data(), finalNorm.data(), 1e-5f, headW, logits.data(), partials.data(), &done, ids.data(), batch, d, vocab, vec);
        });
        dump(xz.data(), xz.size() * 4); dump(u.data(), u.size() * 4); dump(dbc.data(), dbc.size() * 4); dump(y.data(), y.size() * 4);
        dump(out.data(), out.size() * 4); dump(convState.data(), convState.size() * 4); dump(ssm.data(), ssm.size() * 4);
        dump(logits.data(), logits.size() * 4); dump(ids.data(), ids.size() * 8);
    }
    fclose(f);
    double m = 0; for (float v : out) m = std::max(m, (double)std::fabs(v));
    printf("ids");
    for (auto i : ids) printf(" %lld", (long long)i);
    printf(", max |out| %.3g\n", m);
    return 0;
}
