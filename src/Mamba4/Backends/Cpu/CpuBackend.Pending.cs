using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Kernels still being written; each moves to its own file.
public sealed partial class CpuBackend
{
    public void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta) => throw new NotImplementedException();
    public void EmbeddingForward(Tensor weight, Tensor ids, Tensor y) => throw new NotImplementedException();
    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex) => throw new NotImplementedException();
    public void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd) => throw new NotImplementedException();
    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias) => throw new NotImplementedException();
    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd) => throw new NotImplementedException();
    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight) => throw new NotImplementedException();
    public void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y) => throw new NotImplementedException();
    public void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias) => throw new NotImplementedException();
    public void SelectiveScanForward(in SelectiveScanArgs args) => throw new NotImplementedException();
    public void SelectiveScanBackward(in SelectiveScanArgs args, in SelectiveScanGrads grads) => throw new NotImplementedException();
}
