// The Mamba output gate (Ops/Gate.cs): out = y·silu(z);  dy = dout·silu(z),  dz = dout·y·silu'(z).

extern "C" __global__ void gate_forward(const float* y, const float* z, float* out, i64 n)
{
    GRID_STRIDE(i, n) out[i] = y[i] * silu_f(z[i]);
}

extern "C" __global__ void gate_backward(const float* y, const float* z, const float* dout, float* dy, float* dz, i64 n)
{
    GRID_STRIDE(i, n)
    {
        float zi = z[i], d = dout[i];
        dy[i] = d * silu_f(zi);
        dz[i] = d * silu_grad_f(zi) * y[i];
    }
}
