// Element-wise activations (Ops/Activations.cs); kind as Backends.Activation: 0 SiLU, 1 GELU, 2 softplus, 3 exp.
//   silu(x) = x·σ(x)                  silu'(x) = σ(x)(1 + x(1 − σ(x)))
//   gelu(x) = ½x(1 + erf(x/√2))       gelu'(x) = Φ(x) + x·φ(x)
//   softplus(x) = log(1 + eˣ)          softplus'(x) = σ(x)  (x, 1 when x > 20)
//   exp(x)                             exp'(x) = exp(x)

__device__ __forceinline__ float activation(int kind, float x)
{
    switch (kind)
    {
        case 0: return silu_f(x);
        case 1: return 0.5f * x * (1.f + erff(x * 0.70710678f));
        case 2: return softplus_f(x);
        default: return expf(x);
    }
}

__device__ __forceinline__ float activation_grad(int kind, float x, float dy)
{
    switch (kind)
    {
        case 0: return dy * silu_grad_f(x);
        case 1: return dy * (0.5f * (1.f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x));
        case 2: return x > 20.f ? dy : dy * sigmoid_f(x);
        default: return dy * expf(x);
    }
}

extern "C" __global__ void activation_forward(int kind, const float* x, float* y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = activation(kind, x[i]);
}

extern "C" __global__ void activation_backward(int kind, const float* x, const float* dy, float* dx, i64 n)
{
    GRID_STRIDE(i, n) dx[i] = activation_grad(kind, x[i], dy[i]);
}
