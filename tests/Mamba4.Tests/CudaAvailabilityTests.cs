using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Runs everywhere (no GPU needed): the CUDA backend either works or says clearly why not; kernels are embedded.</summary>
public class CudaAvailabilityTests
{
    [Fact]
    public void CudaDeviceEitherWorksOrThrowsNotSupportedWithAReason()
    {
        if (Backend.IsAvailable(Device.Cuda(0), out var reason))
        {
            Assert.IsType<CudaBackend>(Backend.For(Device.Cuda(0)));
            return;
        }
        Assert.False(string.IsNullOrWhiteSpace(reason));
        var e = Assert.Throws<NotSupportedException>(() => Backend.For(Device.Cuda(0)));
        Assert.Contains("CUDA", e.Message);
        Assert.Throws<NotSupportedException>(() => Tensor.Zeros(new Shape(3), DType.F32, Device.Cuda(0)));
        using var cpu = Tensor.From([1f, 2f]);
        Assert.Throws<NotSupportedException>(() => cpu.To(Device.Cuda(0)));
    }

    [Fact]
    public void EveryKernelFamilyIsEmbedded()
    {
        var files = CudaCompiler.KernelFiles().ToHashSet();
        foreach (var f in new[] { "elementwise.cu", "activations.cu", "gate.cu", "dropout.cu", "reduce.cu", "embedding.cu", "layernorm.cu",
                     "rmsnorm.cu", "conv.cu", "scan.cu", "step.cu", "loss.cu", "attention.cu" })
            Assert.Contains(f, files);
        Assert.Contains("ScanParams", CudaCompiler.Source("scan.cu"));
        Assert.Contains("warp_sum", CudaCompiler.Program("loss.cu"));
    }

    [Fact]
    public void SizeClassesAreBoundedAndMonotonic()
    {
        long previous = 0;
        for (long b = 1; b < 1L << 32; b = b * 3 / 2 + 1)
        {
            long c = CudaAllocator.SizeClass(b);
            Assert.True(c >= b && c >= previous && c <= Math.Max((b + CudaAllocator.MinimumBlock - 1) / CudaAllocator.MinimumBlock * CudaAllocator.MinimumBlock, b + b / 4 + 1), $"{b} → {c}");
            previous = c;
        }
    }
}
