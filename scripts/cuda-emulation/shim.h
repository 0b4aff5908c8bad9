// CPU emulation of the CUDA features ssd_scan.cu uses (scripts/cuda-emulation/ssd-check.sh): a block is 256 std::threads
// walking the grid's blocks in order (__shared__ becomes static: one block at a time), __syncthreads a barrier of 256, warp
// shuffles and mma.sync.m16n8k8 (tf32 in, F32 out; products summed in double) collectives of 32 through per-warp buffers.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <atomic>
#include <cstdlib>
#include <barrier>
#include <thread>
#include <vector>
#include <functional>
#include <algorithm>
using std::min; using std::max; using std::isinf;
struct uint3_ { unsigned x, y, z; };
struct dim3_ { unsigned x, y, z; };
inline thread_local uint3_ threadIdx, blockIdx;
inline dim3_ blockDim, gridDim;
struct float4 { float x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct float2 { float x, y; };
inline float2 make_float2(float a, float b) { return {a, b}; }
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__
inline std::barrier<>* blockBar;
inline std::barrier<>* warpBar[8];
inline uint64_t warpBuf[8][32];
inline void __syncthreads() { blockBar->arrive_and_wait(); }
inline void __syncwarp() { warpBar[threadIdx.x >> 5]->arrive_and_wait(); }
template <class T> T exch(T v, int from_fn(int, int), int o)
{
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint64_t bits = 0; std::memcpy(&bits, &v, sizeof(T));
    warpBuf[w][lane] = bits; warpBar[w]->arrive_and_wait();
    int src = from_fn(lane, o);
    T r = v; if (src >= 0) std::memcpy(&r, &warpBuf[w][src], sizeof(T));
    warpBar[w]->arrive_and_wait();
    return r;
}
// a shuffle from lane src of the warp (src < 0: the lane keeps its own value)
template <class T> T exch_to(T v, int src)
{
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint64_t bits = 0; std::memcpy(&bits, &v, sizeof(T));
    warpBuf[w][lane] = bits; warpBar[w]->arrive_and_wait();
    T r = v; if (src >= 0) std::memcpy(&r, &warpBuf[w][src], sizeof(T));
    warpBar[w]->arrive_and_wait();
    return r;
}
inline int xor_src(int l, int o) { return l ^ o; }
inline int up_src(int l, int o) { return l >= o ? l - o : -1; }
template <class T> T __shfl_xor_sync(unsigned, T v, int o) { return exch(v, xor_src, o); }
template <class T> T __shfl_up_sync(unsigned, T v, int o) { return exch(v, up_src, o); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
// CUDA types and intrinsics the kernel files use, as the drivers need them (the f16 kernels compile but are not run:
// emu_half is a stand-in)
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
struct int2 { int x, y; };
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline int2 make_int2(int a, int b) { return {a, b}; }
inline int min(unsigned a, int b) { return std::min((int)a, b); }
inline float emu_half(unsigned short) { return 0.f; }
inline unsigned short emu_bf16(float x) { unsigned u = __float_as_uint(x); return (unsigned short)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline size_t __cvta_generic_to_shared(const void* p) { return (size_t)p; }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
template <class T> T __ldg(const T* p) { return *p; }
template <class T> T __ldcg(const T* p) { return *p; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __trap() { std::abort(); }
template <class T> T __shfl_sync(unsigned, T v, int s, int width = 32) { int l = threadIdx.x & 31; return exch_to(v, l / width * width + s % width); }
template <class T> T __shfl_up_sync(unsigned, T v, int o, int width) { int l = threadIdx.x & 31; return exch_to(v, l % width >= o ? l - o : -1); }
template <class T> T __shfl_xor_sync(unsigned, T v, int o, int width) { int l = threadIdx.x & 31; return exch_to(v, (l / width) * width + ((l % width) ^ o)); }
// cvt.rna.tf32.f32: round the low 13 mantissa bits to nearest, ties away from zero
inline unsigned emu_tf32(float v)
{
    unsigned u = __float_as_uint(v);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;
    return (u + 0x1000u) & 0xffffe000u;
}
// mma.sync.m16n8k8 f32.tf32: a warp collective
inline float mmaA[8][32][4], mmaB[8][32][2], mmaC[8][32][4];
inline void emu_mma(float& d0, float& d1, float& d2, float& d3, const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int i = 0; i < 4; i++) mmaA[w][lane][i] = __uint_as_float(a[i] & 0xffffe000u);
    mmaB[w][lane][0] = __uint_as_float(b0 & 0xffffe000u); mmaB[w][lane][1] = __uint_as_float(b1 & 0xffffe000u);
    warpBar[w]->arrive_and_wait();
    auto A = [&](int r, int c) { return (double)mmaA[w][4 * (r % 8) + c % 4][(r >= 8) + 2 * (c >= 4)]; };
    auto B = [&](int k, int n) { return (double)mmaB[w][4 * n + k % 4][k >= 4]; };
    int g = lane >> 2, t = lane & 3;
    float* d[4] = {&d0, &d1, &d2, &d3};
    for (int i = 0; i < 4; i++)
    {
        int r = g + 8 * (i >> 1), n = 2 * t + (i & 1);
        double s = 0; for (int k = 0; k < 8; k++) s += A(r, k) * B(k, n);
        *d[i] = (float)((double)*d[i] + s);
    }
    warpBar[w]->arrive_and_wait();
}
// run kernel over a grid: `threads` threads (a multiple of 32, at most 256), each walks every block in order; a barrier
// closes each block
inline void launch(dim3_ grid, std::function<void()> kernel, unsigned threads = 256)
{
    gridDim = grid; blockDim = {threads, 1, 1};
    std::barrier<> bb(threads); blockBar = &bb;
    for (int i = 0; i < 8; i++) warpBar[i] = new std::barrier<>(32);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++)
            {
                blockIdx = {x, y, z};
                kernel();
                bb.arrive_and_wait();
            }
        });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 8; i++) delete warpBar[i];
}
