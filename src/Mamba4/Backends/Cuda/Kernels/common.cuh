// Shared by every kernel file (prepended by CudaCompiler). No includes: NVRTC provides the device
// math functions and intrinsics. Tensors are row-major, contiguous, F32 unless named otherwise.
typedef long long i64;
typedef unsigned long long u64;

#define FULL_MASK 0xffffffffu
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define NEG_INF __int_as_float(0xff800000)

// Compile groups: a file may split its template instantiations into groups (`#if KERNEL_GROUP_IS(g)` … `#endif` at top
// level; KernelTable records each kernel's group); the backend then compiles the file once per group it needs, with
// -DKERNEL_GROUP=g. Without KERNEL_GROUP (nvrtc-check.py, the emulators) every group is compiled.
#ifndef KERNEL_GROUP
#define KERNEL_GROUP 0
#endif
#define KERNEL_GROUP_IS(g) (KERNEL_GROUP == 0 || KERNEL_GROUP == (g))

// Grid-stride loop over n items.
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// σ(x) = 1/(1 + e^−x)
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }
// silu(x) = x·σ(x);  silu'(x) = σ(x)(1 + x(1 − σ(x)))
__device__ __forceinline__ float silu_f(float x) { return x * sigmoid_f(x); }
__device__ __forceinline__ float silu_grad_f(float x) { float s = sigmoid_f(x); return s * (1.f + x * (1.f - s)); }
// softplus(x) = max(x, 0) + log(1 + e^−|x|), x when x > 20 (as the CPU backend and PyTorch)
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : fmaxf(x, 0.f) + log1pf(expf(-fabsf(x))); }

// Fast forms for the scan's inner loops (a few ulp; the parity tests bound them):
//   2^x by the special-function unit;  σ(x) with __expf and an approximate divide;
//   softplus with log1p(e) = e − e²/2 + e³/3 for e < 0.01, else __logf(1 + e).
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float fast_sigmoid(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }
__device__ __forceinline__ float fast_silu(float x) { return x * fast_sigmoid(x); }
__device__ __forceinline__ float fast_silu_grad(float x) { float s = fast_sigmoid(x); return s * (1.f + x * (1.f - s)); }
__device__ __forceinline__ float fast_softplus(float x)
{
    if (x > 20.f) return x;
    float e = __expf(-fabsf(x));
    float l = e < 0.01f ? e * (1.f - e * (0.5f - e * (1.f / 3.f))) : __logf(1.f + e);
    return fmaxf(x, 0.f) + l;
}

// 2-byte element types as raw bits (NVRTC has no cuda_bf16.h without an include path), widened by to_f32 and rounded by
// from_f32<T> (to nearest even; a NaN stays a NaN). store_as<OUT> writes element i of a buffer of kind OUT: 0 F32,
// 1 BF16, 2 F16 (the fused step's weight kinds).
struct bf16_bits { unsigned short v; };
struct half_bits { unsigned short v; };
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16_bits x) { return __uint_as_float((unsigned)x.v << 16); }
__device__ __forceinline__ float to_f32(half_bits x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.v)); return f; }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
// round to nearest even (a NaN stays a NaN): one instruction from sm_80 on
template <> __device__ __forceinline__ bf16_bits from_f32<bf16_bits>(float x)
{
    bf16_bits r;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));
#else
    unsigned u = __float_as_uint(x);
    r.v = (u & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((u >> 16) | 0x40u) : (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
    return r;
}
template <> __device__ __forceinline__ half_bits from_f32<half_bits>(float x) { half_bits r; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.v) : "f"(x)); return r; }
template <int OUT> __device__ __forceinline__ void store_as(void* y, i64 i, float v)
{
    if (OUT == 0) ((float*)y)[i] = v;
    else if (OUT == 1) ((bf16_bits*)y)[i] = from_f32<bf16_bits>(v);
    else ((half_bits*)y)[i] = from_f32<half_bits>(v);
}

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum over the block (every thread gets the result); blockDim a multiple of 32, at most 1024.
template <typename T> __device__ T block_sum(T v)
{
    __shared__ T partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : (T)0;
    v = warp_sum(v);
    return v;
}

__device__ float block_max(float v)
{
    __shared__ float partial[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : NEG_INF;
    return warp_max(v);
}

// The CPU backend's counter-based random bits (dropout masks): SplitMix64 of (seed, index).
__device__ __forceinline__ u64 split_mix64(u64 seed, u64 index)
{
    u64 z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Index tensors may be I64 or I32.
__device__ __forceinline__ i64 load_id(const void* ids, int ids64, i64 p)
{
    return ids64 ? ((const i64*)ids)[p] : (i64)((const int*)ids)[p];
}

// m = max_j x_j and logSum = log Σ_j exp(x_j − m) over a row of v values, the whole block cooperating (losses:
// cross_entropy.cu, log_softmax.cu); logSum = 0 when the row's max is infinite.
__device__ void max_and_log_sum(const float* x, int v, float& m, float& logSum)
{
    float local = NEG_INF;
    for (int j = threadIdx.x; j < v; j += blockDim.x) local = fmaxf(local, x[j]);
    m = block_max(local);
    if (isinf(m)) { logSum = 0.f; return; }
    float s = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) s += expf(x[j] - m);
    logSum = logf(block_sum(s));
}
