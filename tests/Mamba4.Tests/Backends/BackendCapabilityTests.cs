using System.Reflection;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Optional backend capabilities (IGruBackend, IMambaStepBackend): asked for by the ops, kept by the profiling wrapper, and a clear
/// error where a backend lacks one.</summary>
public class BackendCapabilityTests
{
    /// <summary>A backend with the core kernel set only: forwards every IBackend call to the CPU backend.</summary>
    public class CoreOnly : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? method, object?[]? args) => method!.Invoke(CpuBackend.Instance, args);

        public static IBackend Create() => Create<IBackend, CoreOnly>();
    }

    [Fact]
    public void ABackendWithoutTheCapabilityGetsAnErrorNamingTheOpTheBackendAndTheCapability()
    {
        var backend = CoreOnly.Create();
        Assert.False(backend is IGruBackend);
        var e = Assert.Throws<NotSupportedException>(() => Backend.Require<IGruBackend>(backend, "Gru"));
        Assert.Equal("Gru: the cpu backend does not implement IGruBackend", e.Message);
    }

    [Fact]
    public void TheCpuBackendAndItsProfilingWrapperHaveTheGruCapability()
    {
        Assert.Same(CpuBackend.Instance, Backend.Require<IGruBackend>(CpuBackend.Instance, "Gru"));
        // Profiling must not take the capability away (GRU4Rec training under TrainBench's profiler).
        Assert.IsAssignableFrom<IGruBackend>(ProfilingBackend.Wrap(CpuBackend.Instance));
        Assert.False(ProfilingBackend.Wrap(CoreOnly.Create()) is IGruBackend);
    }

    [Fact]
    public void TheProfilingWrapperKeepsTheFusedDecodingStepCapability()
    {
        // Without it a profiled model silently decodes through the unfused ops.
        var wrapped = ProfilingBackend.Wrap(CpuBackend.Instance);
        Assert.IsAssignableFrom<IMambaStepBackend>(wrapped);
        Assert.IsAssignableFrom<IGruBackend>(wrapped);
        Assert.False(ProfilingBackend.Wrap(CoreOnly.Create()) is IMambaStepBackend);
    }
    [Fact]
    public void TheProfilingWrapperCountsEachKernelsTensorBytesAndNotAQueryThatDidNothing()
    {
        var wrapped = ProfilingBackend.Wrap(CpuBackend.Instance);
        ProfilingBackend.Reset();
        using var a = Tensor.Zeros(new Shape(3, 4));
        using var b = Tensor.Zeros(new Shape(4, 5));
        using var c = Tensor.Zeros(new Shape(3, 5));
        wrapped.Gemm(a, false, b, false, c, 1f, 0f);
        wrapped.Gemm(a, false, b, false, c, 1f, 0f);
        Assert.Null(wrapped.ProductOperand(a));   // the CPU rounds nothing ahead: no work, so no row
        var traffic = ProfilingBackend.Traffic();
        var gemm = Assert.Single(traffic, r => r.Kernel == "Gemm");
        Assert.Equal(2, gemm.Calls);
        Assert.Equal(2L * (12 + 20 + 15) * sizeof(float), gemm.Bytes);   // A, B and C of each call
        Assert.DoesNotContain(traffic, r => r.Kernel == "ProductOperand");
        Assert.DoesNotContain(ProfilingBackend.Report(), r => r.Kernel == "ProductOperand");
        ProfilingBackend.Reset();
    }
}
