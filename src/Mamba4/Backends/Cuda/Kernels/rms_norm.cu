// RMSNorm over the last axis (Ops/RmsNorm.cs), one warp per row:
//   r = 1/√(mean x² + ε),  x̂ = x·r,  y = x̂·w
// Backward, g = dy·w:  dx = r·(g − x̂·mean(g·x̂)) (added to dx's values with `accumulate`);  dw = Σ_rows dy·x̂ (segments,
// then sum_rows_final).

// Rows of 4-float multiples with x, w 16-byte aligned (and y aligned to 4 of its elements) are read and written 4 values
// at a time, the loads of a row issued together (unrolled): with few rows (a decoding step: one warp per stream) the
// kernel is one memory round trip, not d/32. y is written as OUT (store_as: 0 F32; 1 BF16, 2 F16 for a decoding step's
// cuBLAS product with 2-byte weights, CudaBackend.MambaStep.cs), rounded from the same F32 value; rstd may be null.
template <int OUT> __device__ __forceinline__ unsigned narrow_bits(float v)
{
    return OUT == 1 ? from_f32<bf16_bits>(v).v : from_f32<half_bits>(v).v;
}

template <int OUT> __device__ __forceinline__ void store4_as(void* y, i64 j, float4 v)
{
    if (OUT == 0) ((float4*)y)[j] = v;
    else ((uint2*)y)[j] = make_uint2(narrow_bits<OUT>(v.x) | narrow_bits<OUT>(v.y) << 16, narrow_bits<OUT>(v.z) | narrow_bits<OUT>(v.w) << 16);
}

template <int OUT> __device__ void rmsnorm_rows(const float* x, const float* w, float eps, void* y, float* rstd, i64 rows, int d)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    int lane = threadIdx.x & 31;
    const float* xr = x + row * d;
    float s = 0.f;
    if ((d & 3) == 0 && (((u64)xr | (u64)w) & 15) == 0 && ((u64)y & (OUT == 0 ? 15 : 7)) == 0)
    {
        const float4* x4 = (const float4*)xr;
        const float4* w4 = (const float4*)w;
        int d4 = d >> 2;
#pragma unroll 8
        for (int j = lane; j < d4; j += 32)
        {
            float4 v = x4[j];
            s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        float rs = 1.f / sqrtf(warp_sum(s) / d + eps);
        if (lane == 0 && rstd) rstd[row] = rs;
#pragma unroll 8
        for (int j = lane; j < d4; j += 32)
        {
            float4 v = x4[j], g = w4[j];
            store4_as<OUT>(y, row * d4 + j, make_float4(v.x * rs * g.x, v.y * rs * g.y, v.z * rs * g.z, v.w * rs * g.w));
        }
        return;
    }
    for (int j = lane; j < d; j += 32) s += xr[j] * xr[j];
    float rs = 1.f / sqrtf(warp_sum(s) / d + eps);
    if (lane == 0 && rstd) rstd[row] = rs;
    for (int j = lane; j < d; j += 32) store_as<OUT>(y, row * d + j, xr[j] * rs * w[j]);
}

extern "C" __global__ void rmsnorm_forward(const float* x, const float* w, float eps, float* y, float* rstd, i64 rows, int d)
{
    rmsnorm_rows<0>(x, w, eps, y, rstd, rows, d);
}

extern "C" __global__ void rmsnorm_forward_bf16(const float* x, const float* w, float eps, void* y, float* rstd, i64 rows, int d)
{
    rmsnorm_rows<1>(x, w, eps, y, rstd, rows, d);
}

extern "C" __global__ void rmsnorm_forward_f16(const float* x, const float* w, float eps, void* y, float* rstd, i64 rows, int d)
{
    rmsnorm_rows<2>(x, w, eps, y, rstd, rows, d);
}

extern "C" __global__ void rmsnorm_backward_dx(const float* dy, const float* x, const float* w, const float* rstd, float* dx, int accumulate, i64 rows, int d)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    int lane = threadIdx.x & 31;
    const float *xr = x + row * d, *dyr = dy + row * d;
    float rs = rstd[row];
    float sgx = 0.f;
    for (int j = lane; j < d; j += 32) sgx += dyr[j] * w[j] * (xr[j] * rs);
    float meanGx = warp_sum(sgx) / d;
    float* dxr = dx + row * d;
    for (int j = lane; j < d; j += 32) dxr[j] = (dyr[j] * w[j] - xr[j] * rs * meanGx) * rs + (accumulate ? dxr[j] : 0.f);
}

extern "C" __global__ void rmsnorm_weight_partials(const float* dy, const float* x, const float* rstd, i64 rows, int d, i64 rowsPerSegment, double* pw)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    i64 r0 = (i64)blockIdx.y * rowsPerSegment, r1 = min(rows, r0 + rowsPerSegment);
    double sw = 0;
    for (i64 r = r0; r < r1; r++) sw += (double)(dy[r * d + j] * (x[r * d + j] * rstd[r]));
    pw[(i64)blockIdx.y * d + j] = sw;
}
