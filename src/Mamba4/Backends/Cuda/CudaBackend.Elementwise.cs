using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/elementwise.cu
public sealed unsafe partial class CudaBackend
{
    public void Add(Tensor a, Tensor b, Tensor y) => Map(Kernels.Elementwise.File, Kernels.Elementwise.Add, y.NumElements, a, b, y, y.NumElements);
    public void Mul(Tensor a, Tensor b, Tensor y) => Map(Kernels.Elementwise.File, Kernels.Elementwise.Mul, y.NumElements, a, b, y, y.NumElements);
    public void Scale(Tensor x, float alpha, Tensor y) => Map(Kernels.Elementwise.File, Kernels.Elementwise.Scale, y.NumElements, x, alpha, y, y.NumElements);
    public void AddInPlace(Tensor dst, Tensor src, float alpha) => Map(Kernels.Elementwise.File, Kernels.Elementwise.AddInPlace, dst.NumElements, dst, src, alpha, dst.NumElements);
}
