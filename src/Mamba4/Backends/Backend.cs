using Mamba4.Backends.Cpu;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Backends;

/// <summary>Finds the backend for a device. The CPU backend is always present; a CUDA device's backend is created at first use.</summary>
public static class Backend
{
    private static readonly Dictionary<Device, IBackend> Registered = new() { [Device.Cpu] = CpuBackend.Instance };
    private static readonly Lock Gate = new();

    /// <summary>The engine settings this process runs under (<see cref="Configure"/>); defaults until configured.</summary>
    public static EngineSettings Settings { get; private set; } = EngineSettings.Default;

    /// <summary>Applies <paramref name="settings"/> to the engine: the tool, the test run and the benchmarks call it once at
    /// start-up, before any kernel runs. The CPU GEMM library (Blas, and OpenBLAS's thread count) is chosen at the first
    /// matrix product and a CUDA backend takes CudaSyncEveryLaunch/CudaMatmul when it is created; the other settings are
    /// read at each use, so tests and benchmarks may switch them (the GEMV tiles, the scan plan, Threads).</summary>
    public static void Configure(EngineSettings settings) => Settings = settings;

    /// <summary>The backend of <paramref name="device"/>; NotSupportedException (saying why) when the device cannot be used.</summary>
    public static IBackend For(Device device)
    {
        lock (Gate)
        {
            if (Registered.TryGetValue(device, out var b)) return b;
            if (device.Kind == DeviceKind.Cuda)
            {
                var cuda = CudaBackend.Create(device.Index);
                Registered[device] = cuda;
                return cuda;
            }
        }
        throw new NotSupportedException($"no backend is available for device {device}");
    }

    /// <summary>
    /// The device named by the value of a --device option (cpu, cuda, cuda:N), checked usable: ArgumentException when
    /// malformed, NotSupportedException with the reason when CUDA cannot be used.
    /// </summary>
    public static Device ResolveDeviceOption(string text)
    {
        Device device;
        try { device = Device.Parse(text); }
        catch (FormatException e) { throw new ArgumentException($"--device: {e.Message}", e); }
        if (!device.IsCpu && !IsAvailable(device, out var reason))
            throw new NotSupportedException($"--device {text}: {reason}");
        return device;
    }

    /// <summary>True when <paramref name="device"/> can be used; otherwise <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(Device device, out string reason)
    {
        try
        {
            For(device);
            reason = "";
            return true;
        }
        catch (NotSupportedException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>
    /// The optional capability <typeparamref name="T"/> (e.g. <see cref="IGruBackend"/>) of <paramref name="backend"/>, or a
    /// NotSupportedException naming the op, the backend and the capability it lacks.
    /// </summary>
    public static T Require<T>(IBackend backend, string op) where T : class, IBackend =>
        backend as T ?? throw new NotSupportedException($"{op}: the {backend.Name} backend does not implement {typeof(T).Name}");

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

    /// <summary>Tensor bytes allocated on <paramref name="device"/> now (the CPU pool or the device's caching allocator).</summary>
    public static long BytesInUse(Device device) => device.IsCpu ? CpuAllocator.Shared.BytesInUse : ((CudaBackend)For(device)).Allocator.BytesInUse;

    /// <summary>The most tensor bytes in use at once on <paramref name="device"/> since the last <see cref="ResetPeak"/>.</summary>
    public static long PeakBytesInUse(Device device) => device.IsCpu ? CpuAllocator.Shared.PeakBytesInUse : ((CudaBackend)For(device)).Allocator.PeakBytesInUse;

    public static void ResetPeak(Device device)
    {
        if (device.IsCpu) CpuAllocator.Shared.ResetPeak();
        else ((CudaBackend)For(device)).Allocator.ResetPeak();
    }

    /// <summary>Stops the timing that <see cref="EnableProfiling"/> started (the totals stay readable).</summary>
    public static void DisableProfiling()
    {
        lock (Gate)
            foreach (var device in Registered.Keys.ToList())
                if (Registered[device] is ProfilingBackend p) Registered[device] = p.Inner;
    }

    /// <summary>Copies (and converts) a tensor across devices; dtypes are converted on the CPU side.</summary>
    public static unsafe Tensor Copy(Tensor source, DType dtype, Device target)
    {
        var from = source.Device;
        if (from.IsCpu && target.IsCpu) return source.To(dtype, target);
        if (from.IsCpu)
        {
            var host = source.DType == dtype ? source : source.To(dtype);
            var result = Tensor.Empty(source.Shape, dtype, target);
            Memory(target).CopyFromHost(host.DataPointer, result, result.ByteLength);
            if (!ReferenceEquals(host, source)) host.Dispose();
            return result;
        }
        if (target.IsCpu)
        {
            var raw = Tensor.Empty(source.Shape, source.DType, Device.Cpu);
            Memory(from).CopyToHost(source, raw.DataPointer, raw.ByteLength);
            if (dtype == source.DType) return raw;
            var converted = raw.To(dtype);
            raw.Dispose();
            return converted;
        }
        if (from == target && dtype == source.DType)
        {
            var result = Tensor.Empty(source.Shape, dtype, target);
            Memory(target).CopyDeviceToDevice(source, result, result.ByteLength);
            return result;
        }
        using var staged = Copy(source, source.DType, Device.Cpu);
        return Copy(staged, dtype, target);
    }

    /// <summary>The host↔device transfers of <paramref name="device"/>'s backend (a device other than the CPU).</summary>
    public static IDeviceMemory Memory(Device device) =>
        For(device) as IDeviceMemory ?? throw new NotSupportedException($"the backend of {device} cannot copy to or from the host");
}

/// <summary>Transfers between host memory and a device backend's memory (queued in stream order).</summary>
public interface IDeviceMemory
{
    void CopyFromHost(nint source, Tensor destination, long bytes);
    void CopyToHost(Tensor source, nint destination, long bytes);
    void CopyDeviceToDevice(Tensor source, Tensor destination, long bytes);
}
