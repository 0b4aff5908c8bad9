using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Mamba-2's SSD scan on CUDA (Ops/SsdScan.cs has the math; Kernels/ssd_scan.cu). Work in progress: the interface is fixed, the kernels land next.
public sealed unsafe partial class CudaBackend
{
    public void SsdScanForward(in SsdScanArgs args) => throw new NotImplementedException("SsdScan on CUDA: not implemented yet");
    public void SsdScanBackward(in SsdScanArgs args, in SsdScanGrads grads) => throw new NotImplementedException("SsdScan on CUDA: not implemented yet");
    public void SsdScanStep(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias, bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y) =>
        throw new NotImplementedException("SsdScan on CUDA: not implemented yet");
}
