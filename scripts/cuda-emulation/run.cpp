// ssd-check.sh's driver: random inputs (as Mamba4.Bench cuda-ssd), the SSD forward then backward by ssd_scan.cu's kernels
// (KERNELS: the prepared source) in CudaBackend.SsdScan.cs's order and grids, scratch and outputs poisoned with NaN;
// writes the outputs, then the inputs, as F32 to the file named OUT.  run B L H G P N CHUNK OUT [plain|clamp]
// (plain: no D, no dt bias, no softplus, dt in [0.02, 0.8]; clamp: dt clamped to [0.1, 0.6]; as CudaSsdScanTests).
// SSD_TF32=1 in the environment: the kernels with TF32 products (…_tf32) wherever there are two (not bx, dcb).
// NAN_IN=x|C NAN_AT=i: element i of x or C set to NaN (0x7fffffff, as GPU arithmetic makes it) before the run.
#include "shim.h"
#include KERNELS
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
template <class T> T* buf(size_t n, T fill) { T* p = new T[std::max<size_t>(n, 1)]; std::fill(p, p + std::max<size_t>(n, 1), fill); return p; }
static unsigned cdiv(long a, long b) { return (unsigned)((a + b - 1) / b); }
int main(int argc, char** argv)
{
    int b = atoi(argv[1]), L = atoi(argv[2]), H = atoi(argv[3]), G = atoi(argv[4]), P = atoi(argv[5]), N = atoi(argv[6]), chunk = atoi(argv[7]);
    std::string out = argv[8], mode = argc > 9 ? argv[9] : "";
    bool plain = mode == "plain", clamp = mode == "clamp";
    bool tf32 = getenv("SSD_TF32") && std::string(getenv("SSD_TF32")) == "1";
#define PRODUCTS(kernel) (tf32 ? kernel##_tf32(p) : kernel(p))
    std::mt19937 rng(7);
    auto U = [&](size_t n, float lo, float hi) { std::uniform_real_distribution<float> d(lo, hi); float* p = buf<float>(n, 0.f); for (size_t i = 0; i < n; i++) p[i] = d(rng); return p; };
    const float nan = NAN;
    std::vector<float> zeroVec(std::max(H, 1), 0.f);
    const float* zeros = zeroVec.data();
    size_t bl = (size_t)b * L;
    SsdParams p{};
    p.x = U(bl * H * P, -1, 1); p.dt = plain ? U(bl * H, 0.02f, 0.8f) : U(bl * H, -4, 0); p.A = U(H, -4.5f, -0.5f); p.B = U(bl * G * N, -1, 1); p.C = U(bl * G * N, -1, 1);
    p.D = U(H, -1, 1); p.dtBias = U(H, -0.1f, 0.1f); p.dy = U(bl * H * P, -1, 1);
    if (plain) { p.D = nullptr; p.dtBias = nullptr; }
    if (getenv("NAN_IN") && getenv("NAN_AT"))
    {
        unsigned bits = 0x7fffffffu;
        std::memcpy((void*)((std::string(getenv("NAN_IN")) == "x" ? p.x : p.C) + atol(getenv("NAN_AT"))), &bits, 4);
    }
    p.dtMin = clamp ? 0.1f : 0.f; p.dtMax = clamp ? 0.6f : INFINITY; p.softplus = plain ? 0 : 1;
    p.batch = b; p.L = L; p.H = H; p.P = P; p.G = G; p.N = N;
    p.chunk = std::max(1, std::min(chunk, L)); p.chunks = (L + p.chunk - 1) / p.chunk; p.tiles = (P * N + 255) / 256;
    int rowTiles = (p.chunk + 63) / 64, qp = 64 * rowTiles, chunks = p.chunks;
    size_t steps = (size_t)b * H * L, states = (size_t)b * chunks * H * P * N, mats = (size_t)b * chunks * G * qp * qp;
    p.y = buf<float>(bl * H * P, nan); p.lastState = buf<float>((size_t)b * H * P * N, nan);
    p.dtp = buf<float>(steps, nan); p.cum = buf<double>(steps, nan); p.states = buf<float>(states, nan);
    p.cbm = buf<float>(mats, nan);
    int cnP = P <= 64 ? 4 : 8, colBlocks = (N + 63) / 64;   // db, dc: N in blocks of 64
    // forward (CudaBackend.SsdScan.cs's order and grids)
    auto chunkStates = [&] {
        launch({cdiv(32L * b * chunks * H, 256), 1, 1}, [&] { ssd_dt_cumsum(p); });
        launch({(unsigned)((N + 63) / 64 * ((P + 63) / 64)), (unsigned)chunks, (unsigned)(b * H)}, [&] { PRODUCTS(ssd_chunk_state); });
        launch({(unsigned)p.tiles, (unsigned)(b * H), 1}, [&] { ssd_state_passing(p); });
        int t32 = (p.chunk + 31) / 32;
        launch({(unsigned)(t32 * t32), (unsigned)chunks, (unsigned)(b * G)}, [&] { ssd_bmm(p); });
    };
    chunkStates();
    launch({(unsigned)rowTiles, (unsigned)chunks, (unsigned)(b * H)}, [&] { if (cnP == 4) PRODUCTS(ssd_mix_fwd_c4); else PRODUCTS(ssd_mix_fwd_c8); });
    FILE* f = fopen(out.c_str(), "wb");
    auto dump = [&](const float* v, size_t n) { fwrite(v, 4, n, f); };
    dump(p.y, bl * H * P); dump(p.lastState, (size_t)b * H * P * N);
    // backward, from fresh (poisoned) scratch
    p.lastState = nullptr;
    p.dtp = buf<float>(steps, nan); p.cum = buf<double>(steps, nan); p.states = buf<float>(states, nan); p.cbm = buf<float>(mats, nan);
    p.dx = buf<float>(bl * H * P, nan); p.ddt = buf<float>(bl * H, nan); p.dA = buf<float>(H, nan); p.dB = buf<float>(bl * G * N, nan);
    p.dC = buf<float>(bl * G * N, nan); p.dD = plain ? nullptr : buf<float>(H, nan); p.dDtBias = plain ? nullptr : buf<float>(H, nan);
    chunkStates();
    size_t streamChunks = (size_t)b * H * chunks;
    p.rstates = buf<float>(states, nan); p.scal = buf<float>(5 * steps, nan); p.chunkDot = buf<float>(streamChunks * p.tiles, nan);
    p.partials = buf<float>(3 * streamChunks, nan);
    launch({(unsigned)((N + 63) / 64 * ((P + 63) / 64)), (unsigned)chunks, (unsigned)(b * H)}, [&] { PRODUCTS(ssd_chunk_dstate); });
    launch({(unsigned)p.tiles, (unsigned)(b * H), 1}, [&] { ssd_state_passing_backward(p); });
    launch({(unsigned)rowTiles, (unsigned)chunks, (unsigned)(b * H)}, [&] { if (cnP == 4) PRODUCTS(ssd_mix_bf_c4); else PRODUCTS(ssd_mix_bf_c8); });
    launch({(unsigned)rowTiles, (unsigned)chunks, (unsigned)(b * H)}, [&] { if (cnP == 4) ssd_mix_bx_c4(p); else ssd_mix_bx_c8(p); });
    p.dcb = buf<float>(mats, nan); p.diagParts = buf<float>(steps * 2 * rowTiles, nan);
    launch({(unsigned)(rowTiles * rowTiles), (unsigned)chunks, (unsigned)(b * G)}, [&] { ssd_dcb(p); });
    launch({(unsigned)(rowTiles * colBlocks), (unsigned)chunks, (unsigned)(b * G)}, [&] { PRODUCTS(ssd_mix_db_c4); });
    launch({(unsigned)(rowTiles * colBlocks), (unsigned)chunks, (unsigned)(b * G)}, [&] { PRODUCTS(ssd_mix_dc_c4); });
    launch({cdiv(32L * streamChunks, 256), 1, 1}, [&] { ssd_finalize(p); });
    launch({cdiv(H, 256), 1, 1}, [&] { ssd_reduce(p); });
    dump(p.dx, bl * H * P); dump(p.ddt, bl * H); dump(p.dA, H); dump(p.dB, bl * G * N); dump(p.dC, bl * G * N); dump(plain ? zeros : p.dD, H); dump(plain ? zeros : p.dDtBias, H);
    // inputs, for the F64 reference
    dump(p.x, bl * H * P); dump(p.dt, bl * H); dump(p.A, H); dump(p.B, bl * G * N); dump(p.C, bl * G * N); dump(plain ? zeros : p.D, H); dump(plain ? zeros : p.dtBias, H); dump(p.dy, bl * H * P);
    fclose(f);
    return 0;
}
