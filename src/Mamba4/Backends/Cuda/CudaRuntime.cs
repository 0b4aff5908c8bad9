using Mamba4.Backends.Cuda.Native;

namespace Mamba4.Backends.Cuda;

/// <summary>
/// Loads the driver, NVRTC and cuBLAS once per process. <see cref="Unavailable"/> is null when CUDA can
/// be used, otherwise the reason it cannot (no driver, no GPU, a library missing), which
/// <c>Backend.For(Device.Cuda(i))</c> reports in its NotSupportedException.
/// </summary>
internal static unsafe class CudaRuntime
{
    private static readonly Lazy<string?> Failure = new(LoadAll, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string? Unavailable => Failure.Value;
    public static int DeviceCount { get; private set; }
    public static int DriverVersion { get; private set; }
    public static string NvrtcVersion { get; private set; } = "";

    private static string? LoadAll()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess) return "the CUDA backend runs on 64-bit Linux only";
        if (Backend.Settings.CudaDisabled) return "CUDA is disabled by MAMBA4_DISABLE_CUDA";
        var driver = CudaLibraries.TryLoad("libcuda.so.1", out var tried);
        if (driver == 0) return $"no NVIDIA driver: libcuda.so.1 was not found (tried {tried})";
        try
        {
            CudaDriver.Bind(driver);
            int r = CudaDriver.cuInit(0);
            if (r != 0) return $"the NVIDIA driver is present but cuInit failed: {CudaDriver.Describe(r)} (no usable GPU?)";
            int count, version;
            CudaDriver.Check(CudaDriver.cuDeviceGetCount(&count), "cuDeviceGetCount");
            CudaDriver.Check(CudaDriver.cuDriverGetVersion(&version), "cuDriverGetVersion");
            if (count == 0) return "the NVIDIA driver reports no GPU";
            DeviceCount = count;
            DriverVersion = version;

            var nvrtc = CudaLibraries.TryLoad("libnvrtc.so.13", out tried);
            if (nvrtc == 0) return $"NVRTC is missing: libnvrtc.so.13 was not found (tried {tried}; set MAMBA4_CUDA_LIBS to its folder)";
            // NVRTC opens its builtins library by name: load it first from the same folder so that lookup succeeds.
            if (CudaLibraries.FolderOf("libnvrtc.so.13") is { } folder)
                foreach (var f in Directory.GetFiles(folder, "libnvrtc-builtins.so.13*")) System.Runtime.InteropServices.NativeLibrary.TryLoad(f, out _);
            Nvrtc.Bind(nvrtc);
            NvrtcVersion = Nvrtc.Version();

            // libcublas needs libcublasLt: load it first (by path if need be) so the dynamic loader finds it by soname.
            if (CudaLibraries.TryLoad("libcublasLt.so.13", out tried) == 0)
                return $"cuBLASLt is missing: libcublasLt.so.13 was not found (tried {tried}; set MAMBA4_CUDA_LIBS to its folder)";
            var cublas = CudaLibraries.TryLoad("libcublas.so.13", out tried);
            if (cublas == 0) return $"cuBLAS is missing: libcublas.so.13 was not found (tried {tried}; set MAMBA4_CUDA_LIBS to its folder)";
            Cublas.Bind(cublas);
            return null;
        }
        catch (Exception e) when (e is NotSupportedException or CudaException or DllNotFoundException or EntryPointNotFoundException)
        {
            return e.Message;
        }
    }
}
