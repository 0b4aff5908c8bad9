using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends;

/// <summary>Finds the backend for a device. The CPU backend is always present.</summary>
public static class Backend
{
    private static readonly Dictionary<Device, IBackend> Registered = new() { [Device.Cpu] = CpuBackend.Instance };
    private static readonly Lock Gate = new();

    public static IBackend For(Device device)
    {
        lock (Gate)
        {
            if (Registered.TryGetValue(device, out var b)) return b;
        }
        throw new NotSupportedException($"no backend is available for device {device}" +
            (device.IsCpu ? "" : " (the CUDA backend is not built into this version)"));
    }

    public static void Register(IBackend backend)
    {
        lock (Gate) Registered[backend.Device] = backend;
    }

    /// <summary>Times every kernel call from now on (see <see cref="ProfilingBackend.Report"/>).</summary>
    public static void EnableProfiling()
    {
        lock (Gate)
            foreach (var device in Registered.Keys.ToList())
                if (Registered[device] is not ProfilingBackend) Registered[device] = ProfilingBackend.Wrap(Registered[device]);
    }

    /// <summary>Copies (and converts) a tensor across devices; the CPU side converts dtypes.</summary>
    public static Tensor Copy(Tensor source, DType dtype, Device target) =>
        throw new NotSupportedException($"copy from {source.Device} to {target} needs a device backend");
}
