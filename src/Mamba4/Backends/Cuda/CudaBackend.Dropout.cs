using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/dropout.cu
public sealed unsafe partial class CudaBackend
{
    // Same mask as CpuBackend.DropoutForward: keep iff SplitMix64(seed, i) ≥ p·2⁶⁴.
    public void DropoutForward(Tensor x, float p, ulong seed, Tensor y, Tensor mask)
    {
        ulong threshold = CpuBackend.DropoutThreshold(p);
        Map(Kernels.Dropout.File, Kernels.Dropout.DropoutForward, x.NumElements, x, y, mask, seed, threshold, 1f / (1f - p), x.NumElements);
    }

    public void DropoutBackward(Tensor dy, Tensor mask, float p, Tensor dx) =>
        Map(Kernels.Dropout.File, Kernels.Dropout.DropoutBackward, dy.NumElements, dy, mask, 1f / (1f - p), dx, dy.NumElements);
}
