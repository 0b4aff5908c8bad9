using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/gru.cu: per step one cuBLAS GEMM (h_{t−1} W_hhᵀ forward, dgh_t W_hh backward) and one fused gate kernel;
// dW_hh = Σ_t dgh_tᵀ h_{t−1} is a single GEMM over all (b, t) rows once the h_{t−1} are laid out beside dgh.
public sealed unsafe partial class CudaBackend
{
    public void GruForward(Tensor gi, Tensor wHh, Tensor? bHh, Tensor? h0, Tensor y, Tensor gates)
    {
        int batch = gi.Shape[0], len = gi.Shape[1], g3 = gi.Shape[2], h = g3 / 3;
        if (batch == 0 || len == 0 || h == 0) return;
        var gh = Allocator.Allocate((long)batch * g3 * sizeof(float));
        try
        {
            for (int t = 0; t < len; t++)
            {
                nint prev = t > 0 ? y.DataPointer + (nint)((long)(t - 1) * h * 4) : h0?.DataPointer ?? 0;
                long ldPrev = t > 0 ? (long)len * h : h;
                if (prev != 0) Sgemm(false, true, batch, g3, h, 1f, prev, (int)ldPrev, wHh.DataPointer, h, 0f, gh.Pointer, g3);
                Map(Kernels.Gru.File, Kernels.Gru.GruForwardStep, (long)batch * h, gi, prev == 0 ? 0 : gh.Pointer, bHh, prev, ldPrev, y, gates, batch, len, h, t);
            }
        }
        finally { gh.Release(); }
    }

    public void GruBackward(Tensor wHh, Tensor? h0, Tensor y, Tensor gates, Tensor dy, Tensor dGi, Tensor dWhh, Tensor? dBhh, Tensor? dH0)
    {
        int batch = y.Shape[0], len = y.Shape[1], h = y.Shape[2], g3 = 3 * h;
        if (dH0 is not null && h0 is null) throw new ArgumentException("GruBackward: dH0 given without h0");
        using var dgh = Tensor.Empty(new Shape(batch * len, g3), DType.F32, Device);
        using var carry = Tensor.Zeros(new Shape(batch, h), DType.F32, Device);
        for (int t = len - 1; t >= 0; t--)
        {
            nint prev = t > 0 ? y.DataPointer + (nint)((long)(t - 1) * h * 4) : h0?.DataPointer ?? 0;
            long ldPrev = t > 0 ? (long)len * h : h;
            Map(Kernels.Gru.File, Kernels.Gru.GruBackwardStep, (long)batch * h, gates, dy, prev, ldPrev, carry, dGi, dgh, batch, len, h, t);
            // carry += dgh_t W_hh  (not needed at t = 0 without h0)
            if (prev != 0) Sgemm(false, false, batch, h, g3, 1f, dgh.DataPointer + (nint)((long)t * g3 * 4), len * g3, wHh.DataPointer, h, 1f, carry.DataPointer, h);
        }
        if (dH0 is not null) CopyDeviceToDevice(carry, dH0, (long)batch * h * sizeof(float));
        using var prevStates = Tensor.Empty(new Shape(batch * len, h), DType.F32, Device);
        Map(Kernels.Gru.File, Kernels.Gru.GruPreviousStates, (long)batch * len * h, y, h0, prevStates, batch, len, h);
        Gemm(dgh, true, prevStates, false, dWhh, 1f, 0f);
        if (dBhh is not null) SumRows(dgh, dBhh, accumulate: false);
    }
}
