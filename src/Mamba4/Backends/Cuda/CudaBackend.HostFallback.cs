using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels that have no CUDA version yet run on the CPU backend: the inputs are copied to the host, the CPU
// kernel runs, and the outputs (including in-place operands) are copied back. Correct but slow — each method
// here is a CUDA kernel still to write (they were added to IBackend while this backend was being built).
public sealed partial class CudaBackend
{
    private static void OnHost(Tensor?[] inputs, Tensor?[] outputs, Action<Tensor?[], Tensor?[]> cpu)
    {
        var hostIn = inputs.Select(t => t?.To(Device.Cpu)).ToArray();
        var hostOut = outputs.Select(t => t?.To(Device.Cpu)).ToArray();
        try
        {
            cpu(hostIn, hostOut);
            for (int i = 0; i < outputs.Length; i++)
                if (outputs[i] is { } o) o.CopyFrom(hostOut[i]!);
        }
        finally
        {
            foreach (var t in hostIn.Concat(hostOut)) t?.Dispose();
        }
    }

    public double SumOfSquares(Tensor x)
    {
        using var host = x.To(Device.Cpu);
        return CpuBackend.Instance.SumOfSquares(host);
    }

    public void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps, float weightDecay, float bc1, float bc2, long skipDecayRow) =>
        OnHost([grad], [param, m, v], (i, o) => CpuBackend.Instance.AdamWStep(o[0]!, i[0]!, o[1]!, o[2]!, lr, beta1, beta2, eps, weightDecay, bc1, bc2, skipDecayRow));

    public void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y) =>
        OnHost([q, kCache, vCache], [y], (i, o) => CpuBackend.Instance.AttentionStep(i[0]!, i[1]!, i[2]!, length, heads, o[0]!));

    public void AttentionDropoutForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y) =>
        OnHost([q, k, v, keyPadding], [y], (i, o) => CpuBackend.Instance.AttentionDropoutForward(i[0]!, i[1]!, i[2]!, heads, i[3], p, seed, o[0]!));

    public void AttentionDropoutBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y, Tensor dy, Tensor dq, Tensor dk, Tensor dv) =>
        OnHost([q, k, v, keyPadding, y, dy], [dq, dk, dv],
            (i, o) => CpuBackend.Instance.AttentionDropoutBackward(i[0]!, i[1]!, i[2]!, heads, i[3], p, seed, i[4]!, i[5]!, o[0]!, o[1]!, o[2]!));

    public void AttentionForwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp) =>
        OnHost([q, k, v], [y, logSumExp], (i, o) => CpuBackend.Instance.AttentionForwardNonCausal(i[0]!, i[1]!, i[2]!, heads, o[0]!, o[1]!));

    public void AttentionBackwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv) =>
        OnHost([q, k, v, y, logSumExp, dy], [dq, dk, dv],
            (i, o) => CpuBackend.Instance.AttentionBackwardNonCausal(i[0]!, i[1]!, i[2]!, heads, i[3]!, i[4]!, i[5]!, o[0]!, o[1]!, o[2]!));

    public void GruForward(Tensor gi, Tensor wHh, Tensor? bHh, Tensor? h0, Tensor y, Tensor gates) =>
        OnHost([gi, wHh, bHh, h0], [y, gates], (i, o) => CpuBackend.Instance.GruForward(i[0]!, i[1]!, i[2], i[3], o[0]!, o[1]!));

    public void GruBackward(Tensor wHh, Tensor? h0, Tensor y, Tensor gates, Tensor dy, Tensor dGi, Tensor dWhh, Tensor? dBhh, Tensor? dH0) =>
        OnHost([wHh, h0, y, gates, dy], [dGi, dWhh, dBhh, dH0],
            (i, o) => CpuBackend.Instance.GruBackward(i[0]!, i[1], i[2]!, i[3]!, i[4]!, o[0]!, o[1]!, o[2], o[3]));
}
