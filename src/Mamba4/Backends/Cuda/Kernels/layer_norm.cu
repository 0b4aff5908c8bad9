// LayerNorm over the last axis (Ops/LayerNorm.cs), one warp per row:
//   μ = mean x,  σ² = mean (x − μ)² (two passes),  r = 1/√(σ² + ε),  x̂ = (x − μ)·r,  y = x̂·w + b
// Backward, g = dy·w:  dx = r·(g − mean g − x̂·mean(g·x̂));  dw = Σ_rows dy·x̂,  db = Σ_rows dy
// (column sums per segment of rows in double, then reduce.cu's sum_rows_final adds the segments).

extern "C" __global__ void layernorm_forward(const float* x, const float* w, const float* b, float eps, float* y, float* mean, float* rstd, i64 rows, int d)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    int lane = threadIdx.x & 31;
    const float* xr = x + row * d;
    float s = 0.f;
    for (int j = lane; j < d; j += 32) s += xr[j];
    float mu = warp_sum(s) / d;
    float v = 0.f;
    for (int j = lane; j < d; j += 32) { float t = xr[j] - mu; v += t * t; }
    float rs = 1.f / sqrtf(warp_sum(v) / d + eps);
    if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
    float* yr = y + row * d;
    for (int j = lane; j < d; j += 32)
    {
        float t = (xr[j] - mu) * rs * w[j];
        yr[j] = b ? t + b[j] : t;
    }
}

extern "C" __global__ void layernorm_backward_dx(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx, i64 rows, int d)
{
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    int lane = threadIdx.x & 31;
    const float *xr = x + row * d, *dyr = dy + row * d;
    float mu = mean[row], rs = rstd[row];
    float sg = 0.f, sgx = 0.f;
    for (int j = lane; j < d; j += 32)
    {
        float g = dyr[j] * w[j], xh = (xr[j] - mu) * rs;
        sg += g;
        sgx += g * xh;
    }
    float meanG = warp_sum(sg) / d, meanGx = warp_sum(sgx) / d;
    float* dxr = dx + row * d;
    for (int j = lane; j < d; j += 32)
    {
        float g = dyr[j] * w[j], xh = (xr[j] - mu) * rs;
        dxr[j] = (g - meanG - xh * meanGx) * rs;
    }
}

// grid (⌈d/256⌉, segments): pw[seg, j] = Σ dy·x̂, pb[seg, j] = Σ dy over the segment's rows
extern "C" __global__ void layernorm_params_partials(const float* dy, const float* x, const float* mean, const float* rstd, i64 rows, int d,
    i64 rowsPerSegment, double* pw, double* pb)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    i64 r0 = (i64)blockIdx.y * rowsPerSegment, r1 = min(rows, r0 + rowsPerSegment);
    double sw = 0, sb = 0;
    for (i64 r = r0; r < r1; r++)
    {
        float g = dy[r * d + j];
        sw += (double)(g * ((x[r * d + j] - mean[r]) * rstd[r]));
        sb += g;
    }
    pw[(i64)blockIdx.y * d + j] = sw;
    if (pb) pb[(i64)blockIdx.y * d + j] = sb;
}
