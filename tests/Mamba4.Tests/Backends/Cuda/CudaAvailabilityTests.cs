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

    /// <summary>The scan's thread split (host-side, no GPU needed): powers of two as the kernels' shifts and masks need,
    /// NS·TPC ≥ N, and clear errors past the limit or for a split the kernels cannot index.</summary>
    [Fact]
    public void ScanSplitIsPowersOfTwoAndNamesItsLimits()
    {
        Assert.Equal((16, 1), CudaBackend.ScanSplit(16, 16));
        Assert.Equal((4, 4), CudaBackend.ScanSplit(16, 4));
        Assert.Equal((8, 1), CudaBackend.ScanSplit(7, 16));      // N = 7: 8 states, the last one padding
        Assert.Equal((4, 32), CudaBackend.ScanSplit(100, 4));    // ⌈100/4⌉ = 25 lanes rounded up to 32
        Assert.Contains("d_state up to 128, got 129", Assert.Throws<NotSupportedException>(() => CudaBackend.ScanSplit(129, 4)).Message);
        Assert.Contains("power of two, got 3", Assert.Throws<ArgumentException>(() => CudaBackend.ScanSplit(16, 3)).Message);
    }

    [Fact]
    public void EveryKernelFamilyIsEmbedded()
    {
        var files = CudaCompiler.KernelFiles().ToHashSet();
        foreach (var f in new[] { "elementwise.cu", "activations.cu", "gate.cu", "dropout.cu", "reduce.cu", "embedding.cu", "layer_norm.cu",
                     "rms_norm.cu", "causal_conv1d.cu", "selective_scan.cu", "cross_entropy.cu", "log_softmax.cu", "attention.cu", "gru.cu", "optimizer.cu" })
            Assert.Contains(f, files);
        Assert.Contains("ScanParams", CudaCompiler.Source("selective_scan.cu"));
        Assert.Contains("warp_sum", CudaCompiler.Program("log_softmax.cu"));
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
