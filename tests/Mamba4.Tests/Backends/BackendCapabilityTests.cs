using System.Reflection;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;

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
}
