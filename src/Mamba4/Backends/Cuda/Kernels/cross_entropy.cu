// Cross-entropy over the last axis, one block per row (Ops/CrossEntropy.cs); max_and_log_sum is in common.cuh:
//   m = max_j x_j,  lse = m + log Σ_j exp(x_j − m)
//   loss = (m − x_t) + log Σ_j exp(x_j − m)   (0 when t == ignore)
//   dx_j = scale·(exp(x_j − lse) − [j = t])   (zero row when ignored)
// A target outside [0, V) that is not the ignore index: the smallest such row goes to *bad (unless bad is null: the
// targets were checked on the host); its loss and gradient row are 0.

extern "C" __global__ void cross_entropy_forward(const float* logits, const i64* targets, i64 ignore, float* losses, float* lse, int v, u64* bad)
{
    i64 r = blockIdx.x;
    const float* x = logits + r * v;
    float m, logSum;
    max_and_log_sum(x, v, m, logSum);
    if (threadIdx.x != 0) return;
    i64 t = targets[r];
    lse[r] = m + logSum;
    if (t == ignore) losses[r] = 0.f;
    else if (t < 0 || t >= v) { if (bad) atomicMin(bad, (u64)r); losses[r] = 0.f; }
    else losses[r] = (m - x[t]) + logSum;
}

// dlogits written as OUT (store_as: 0 F32; 1 BF16, the operand of the head's BF16 products, rounded from the same F32
// value as the F32 kernel writes: the bits a rounding pass over the F32 gradient would give, without that pass).
template <int OUT> __device__ void cross_entropy_backward_rows(const float* logits, const i64* targets, i64 ignore, const float* lse, float scale, void* dlogits, int v)
{
    i64 r = blockIdx.x;
    i64 t = targets[r];
    const float* x = logits + r * v;
    bool skip = t == ignore || t < 0 || t >= v;
    float l = lse[r];
    for (int j = threadIdx.x; j < v; j += blockDim.x)
    {
        if (skip) { store_as<OUT>(dlogits, r * v + j, 0.f); continue; }
        float g = expf(x[j] - l) * scale;
        store_as<OUT>(dlogits, r * v + j, j == t ? g - scale : g);
    }
}

extern "C" __global__ void cross_entropy_backward(const float* logits, const i64* targets, i64 ignore, const float* lse, float scale, float* dlogits, int v)
{
    cross_entropy_backward_rows<0>(logits, targets, ignore, lse, scale, dlogits, v);
}

extern "C" __global__ void cross_entropy_backward_bf16(const float* logits, const i64* targets, i64 ignore, const float* lse, float scale, void* dlogits, int v)
{
    cross_entropy_backward_rows<1>(logits, targets, ignore, lse, scale, dlogits, v);
}
