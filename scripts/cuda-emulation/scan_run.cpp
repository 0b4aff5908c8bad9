// scan-check.sh's driver: random inputs, then selective_scan.cu's main backward kernel (KERNELS: the prepared source) on a
// grid as CudaBackend.SelectiveScan.cs launches it (256 threads, chunks over L), with the chunk carries H_c and E_c given
// as random inputs (both versions read the same), every output poisoned with NaN where the kernel writes it whole.
// Writes du, dΔ, dz, dA, dB, dC, dD, dbias, dh0 as F32 to OUT.   [FLUSH_SUBS=k] [GRAD=bf16] scan_run B L D N CHUNK OUT [lti]
// GRAD=bf16 runs the _gbf16 kernel (dΔ and dz written in BF16; widened to F32 for OUT).
#include "shim.h"
#include <atomic>
inline float4 emu_smem[232448 / 16];
#include KERNELS
#include <cstdio>
#include <random>
#include <string>
// flushSubs where the kernel file's ScanParams has it (CudaBackend's FlushSubs: a quarter chunk; FLUSH_SUBS overrides)
template <class P> void set_flush_subs(P& p, int fs) { if constexpr (requires { p.flushSubs; }) p.flushSubs = fs; }
template <class T> T* buf(size_t n, T fill) { T* p = new T[std::max<size_t>(n, 1)]; std::fill(p, p + std::max<size_t>(n, 1), fill); return p; }
int main(int argc, char** argv)
{
    int B = atoi(argv[1]), L = atoi(argv[2]), D = atoi(argv[3]), N = atoi(argv[4]), chunk = atoi(argv[5]);
    std::string out = argv[6];
    bool sel = !(argc > 7 && std::string(argv[7]) == "lti");
    int ns = 1; while (ns < N && ns < 4) ns *= 2;
    int tpc = 1; while (tpc * ns < N) tpc *= 2;
    std::mt19937 rng(11);
    auto U = [&](size_t n, float lo, float hi) { std::uniform_real_distribution<float> d(lo, hi); float* p = buf<float>(n, 0.f); for (size_t i = 0; i < n; i++) p[i] = d(rng); return p; };
    size_t bld = (size_t)B * L * D, bln = (size_t)B * L * N;
    int chunks = (L + chunk - 1) / chunk;
    ScanParams p{};
    p.u = U(bld, -1, 1); p.delta = U(bld, -3, 1); p.A = U((size_t)D * N, -2, -0.2f);
    p.B = sel ? U(bln, -1, 1) : U((size_t)D * N, -1, 1); p.C = sel ? U(bln, -1, 1) : U((size_t)D * N, -1, 1);
    p.D = U(D, -1, 1); p.z = U(bld, -2, 2); p.bias = U(D, -0.5f, 0.5f); p.dout = U(bld, -1, 1);
    p.h0 = U((size_t)B * D * N, -1, 1);
    p.carryH = U((size_t)B * chunks * D * N, -1, 1); p.carryG = U((size_t)B * chunks * D * N, -1, 1);
    p.sumDt = U((size_t)B * chunks * D, 0, 1);
    const float nan = NAN;
    p.du = buf<float>(bld, nan); p.ddelta = buf<float>(bld, nan); p.dz = buf<float>(bld, nan);
    p.dA = buf<float>((size_t)D * N, 0.f); p.dB = buf<float>(sel ? bln : (size_t)D * N, 0.f); p.dC = buf<float>(sel ? bln : (size_t)D * N, 0.f);
    p.dD = buf<float>(D, 0.f); p.dbias = buf<float>(D, 0.f); p.dh0 = buf<float>((size_t)B * D * N, nan);
    set_flush_subs(p, getenv("FLUSH_SUBS") ? atoi(getenv("FLUSH_SUBS")) : std::max(1, (chunk + 3) / 4 / 4));
    p.batch = B; p.L = L; p.Dch = D; p.N = N; p.chunkLen = chunk; p.chunks = chunks; p.tpc = tpc; p.selective = sel; p.softplus = 1;
    dim3_ grid{(unsigned)((D + 256 / tpc - 1) / (256 / tpc)), (unsigned)chunks, (unsigned)B};
    std::string name = std::to_string(ns) + "_" + std::to_string(tpc);
    const bool narrow = getenv("GRAD") && std::string(getenv("GRAD")) == "bf16";
#define K(NS, TPC) if (name == #NS "_" #TPC) launch(grid, [&] {                                                        \
        if (narrow) { if (sel) scan_backward_ns##NS##_tpc##TPC##_sel_pf_gbf16(p); else scan_backward_ns##NS##_tpc##TPC##_lti_pf_gbf16(p); } \
        else if (sel) scan_backward_ns##NS##_tpc##TPC##_sel_pf(p); else scan_backward_ns##NS##_tpc##TPC##_lti_pf(p); });
    K(1, 1) K(2, 1) K(4, 1) K(4, 2) K(4, 4) K(4, 8) K(4, 16) K(4, 32)
    if (narrow)   // the BF16 dΔ, dz widened in place, last to first
        for (float* g : {p.ddelta, p.dz})
        {
            const unsigned short* h = reinterpret_cast<const unsigned short*>(g);
            for (size_t i = bld; i-- > 0;) g[i] = __uint_as_float((unsigned)h[i] << 16);
        }
    FILE* f = fopen(out.c_str(), "wb");
    auto dump = [&](const float* v, size_t n) { fwrite(v, 4, n, f); };
    dump(p.du, bld); dump(p.ddelta, bld); dump(p.dz, bld); dump(p.dA, (size_t)D * N); dump(p.dB, sel ? bln : (size_t)D * N);
    dump(p.dC, sel ? bln : (size_t)D * N); dump(p.dD, D); dump(p.dbias, D); dump(p.dh0, (size_t)B * D * N);
    fclose(f);
    printf("ns %d tpc %d chunks %d\n", ns, tpc, chunks);
}
