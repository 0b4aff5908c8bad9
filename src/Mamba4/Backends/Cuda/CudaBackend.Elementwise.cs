using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/elementwise.cu
public sealed unsafe partial class CudaBackend
{
    public void Add(Tensor a, Tensor b, Tensor y) => Map("elementwise.cu", "add", y.NumElements, a, b, y, y.NumElements);
    public void Mul(Tensor a, Tensor b, Tensor y) => Map("elementwise.cu", "mul", y.NumElements, a, b, y, y.NumElements);
    public void Scale(Tensor x, float alpha, Tensor y) => Map("elementwise.cu", "scale", y.NumElements, x, alpha, y, y.NumElements);
    public void AddInPlace(Tensor dst, Tensor src, float alpha) => Map("elementwise.cu", "add_in_place", dst.NumElements, dst, src, alpha, dst.NumElements);
}
