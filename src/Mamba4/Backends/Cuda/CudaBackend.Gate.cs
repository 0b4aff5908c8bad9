using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/gate.cu
public sealed unsafe partial class CudaBackend
{
    public void GateForward(Tensor y, Tensor z, Tensor output) => Map(Kernels.Gate.File, Kernels.Gate.GateForward, y.NumElements, y, z, output, y.NumElements);

    public void GateBackward(Tensor y, Tensor z, Tensor dOut, Tensor dy, Tensor dz) =>
        Map(Kernels.Gate.File, Kernels.Gate.GateBackward, y.NumElements, y, z, dOut, dy, dz, y.NumElements);
}
