using Mamba4.Backends.Cuda.Native;

namespace Mamba4.Backends.Cuda;

/// <summary>
/// A captured CUDA graph (cuStreamBeginCapture … cuStreamEndCapture, cuGraphInstantiate): every kernel, copy and cuBLAS
/// call queued on the device's stream while it was captured, replayed by <see cref="Launch"/> as one submission with
/// the same device addresses. The device blocks allocated during capture stay reserved for it until it is disposed.
/// Made by <see cref="CudaBackend.Capture"/>.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    private readonly CudaBackend _device;
    private readonly List<(nint Pointer, long Size)> _blocks;
    private nint _graph, _exec;

    internal CudaGraph(CudaBackend device, nint graph, nint exec, List<(nint Pointer, long Size)> blocks)
    {
        (_device, _graph, _exec, _blocks) = (device, graph, exec, blocks);
    }

    /// <summary>Kernels launched while capturing (what one replay runs, cuBLAS calls not counted).</summary>
    public long Kernels { get; init; }

    /// <summary>Queues one replay on the stream.</summary>
    public void Launch()
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        _device.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuGraphLaunch(_exec, _device.Stream), "cuGraphLaunch");
    }

    public void Dispose()
    {
        if (_exec == 0) return;
        _device.Synchronize();
        CudaDriver.cuGraphExecDestroy(_exec);
        CudaDriver.cuGraphDestroy(_graph);
        _exec = _graph = 0;
        _device.Allocator.ReleaseGraphBlocks(_blocks);
    }
}
