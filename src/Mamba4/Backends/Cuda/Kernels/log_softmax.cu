// Log-softmax over the last axis, one block per row (Ops/LogSoftmax.cs); max_and_log_sum is in common.cuh:
//   m = max_j x_j,  y_j = (x_j − m) − log Σ_j exp(x_j − m);   dx_j = dy_j − exp(y_j)·Σ_k dy_k

extern "C" __global__ void log_softmax_forward(const float* x, float* y, int v)
{
    i64 r = blockIdx.x;
    float m, logSum;
    max_and_log_sum(x + r * v, v, m, logSum);
    for (int j = threadIdx.x; j < v; j += blockDim.x) y[r * v + j] = (x[r * v + j] - m) - logSum;
}

extern "C" __global__ void log_softmax_backward(const float* y, const float* dy, float* dx, int v)
{
    i64 r = blockIdx.x;
    float s = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) s += dy[r * v + j];
    s = block_sum(s);
    for (int j = threadIdx.x; j < v; j += blockDim.x) dx[r * v + j] = dy[r * v + j] - expf(y[r * v + j]) * s;
}
