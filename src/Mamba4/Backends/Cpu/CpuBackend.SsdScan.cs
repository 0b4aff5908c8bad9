using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Mamba-2's SSD scan on the CPU (Ops/SsdScan.cs has the math). For now the plain double-precision twin,
// SsdScanReference; the chunked kernel replaces it here and keeps the twin for the tests.
public sealed unsafe partial class CpuBackend
{
    public void SsdScanForward(in SsdScanArgs args) => SsdScanReference.Forward(args);

    public void SsdScanBackward(in SsdScanArgs args, in SsdScanGrads grads) => SsdScanReference.Backward(args, grads);

    public void SsdScanStep(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias, bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y) =>
        SsdScanReference.Step(x, dt, a, b, c, d, dtBias, dtSoftplus, dtMin, dtMax, ssmState, y);
}
