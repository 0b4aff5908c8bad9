using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/activations.cu
public sealed unsafe partial class CudaBackend
{
    public void ActivationForward(Activation kind, Tensor x, Tensor y) =>
        Map(Kernels.Activations.File, Kernels.Activations.ActivationForward, x.NumElements, (int)kind, x, y, x.NumElements);

    public void ActivationBackward(Activation kind, Tensor x, Tensor dy, Tensor dx) =>
        Map(Kernels.Activations.File, Kernels.Activations.ActivationBackward, x.NumElements, (int)kind, x, dy, dx, x.NumElements);
}
