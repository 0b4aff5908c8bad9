using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Kernels still being written; each moves to its own file.
public sealed partial class CpuBackend
{
    public void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp) => throw new NotImplementedException();
    public void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits) => throw new NotImplementedException();
    public void LogSoftmaxForward(Tensor x, Tensor y) => throw new NotImplementedException();
    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => throw new NotImplementedException();
    public void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp) => throw new NotImplementedException();
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv) => throw new NotImplementedException();
}
