using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Kernels still being written; each moves to its own file.
public sealed partial class CpuBackend
{
    public void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp) => throw new NotImplementedException();
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv) => throw new NotImplementedException();
}
