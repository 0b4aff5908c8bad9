using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Helpers of the GPU tests: <see cref="Gpu"/> skips the test (Assert.Skip, with the reason) where no CUDA GPU can
/// be used; tensors are made on the CPU and copied, and results compared with the CPU backend.
/// </summary>
public static class CudaTest
{
    public static readonly Device Cuda = Device.Cuda(0);

    /// <summary>The CUDA backend of GPU 0, or a skip saying why there is none.</summary>
    public static CudaBackend Gpu
    {
        get
        {
            if (!Backend.IsAvailable(Cuda, out var reason)) Assert.Skip(reason);
            return (CudaBackend)Backend.For(Cuda);
        }
    }

    public static IBackend Cpu => Backend.For(Device.Cpu);

    public static Tensor Uniform(Random rng, double lo, double hi, params int[] shape)
    {
        var s = new Shape(shape);
        var v = new float[s.NumElements];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return Tensor.From(v, shape);
    }

    public static Tensor Random(Random rng, params int[] shape) => Uniform(rng, -1, 1, shape);

    public static Tensor OnGpu(Tensor t) => t.To(Cuda);

    /// <summary>An output pair: CPU and GPU tensors of one shape, both poisoned with NaN so unwritten elements show.</summary>
    public static (Tensor Cpu, Tensor Gpu) Outputs(params int[] shape)
    {
        var c = Tensor.Full(new Shape(shape), float.NaN);
        var g = Tensor.Full(new Shape(shape), float.NaN, Cuda);
        return (c, g);
    }

    /// <summary>max |cpu − gpu| ≤ tol · max(max |cpu|, 10⁻³) (and NaN only where the CPU has NaN).</summary>
    public static void Close(Tensor cpu, Tensor gpu, double tol, string what)
    {
        Assert.Equal(cpu.Shape, gpu.Shape);
        var a = cpu.ToFloatArray();
        var b = gpu.ToFloatArray();
        double scale = 0, worst = 0;
        int at = -1;
        foreach (var x in a) scale = Math.Max(scale, Math.Abs(x));
        for (int i = 0; i < a.Length; i++)
        {
            if (float.IsNaN(a[i]) != float.IsNaN(b[i])) Assert.Fail($"{what}: element {i} is {b[i]} on the GPU, {a[i]} on the CPU");
            double d = Math.Abs((double)a[i] - b[i]);
            if (d > worst) { worst = d; at = i; }
        }
        Assert.True(worst <= tol * Math.Max(scale, 1e-3),
            $"{what}: element {at} is {(at >= 0 ? b[at] : 0):G9} on the GPU, {(at >= 0 ? a[at] : 0):G9} on the CPU (max |cpu| {scale:G4}, tolerance {tol:G2} relative)");
    }
}
