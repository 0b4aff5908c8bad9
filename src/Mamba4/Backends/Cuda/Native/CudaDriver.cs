namespace Mamba4.Backends.Cuda.Native;

/// <summary>
/// The CUDA driver API (libcuda.so.1), bound at run time as unmanaged function pointers. Device
/// pointers are CUdeviceptr (64-bit); contexts, streams, modules, functions and events are handles.
/// Every call goes through <see cref="Check"/>, which turns a CUresult into a <see cref="CudaException"/>
/// naming the call.
/// </summary>
internal static unsafe class CudaDriver
{
    public const int AttrMultiprocessorCount = 16;
    public const int AttrL2CacheSize = 38;
    public const int AttrMaxThreadsPerMultiprocessor = 39;
    public const int AttrComputeCapabilityMajor = 75;
    public const int AttrComputeCapabilityMinor = 76;
    public const int AttrMaxSharedMemoryPerBlockOptin = 97;
    public const int FuncAttrSharedSizeBytes = 1;
    public const int FuncAttrLocalSizeBytes = 3;
    public const int FuncAttrNumRegs = 4;
    public const int FuncAttrMaxDynamicSharedSizeBytes = 8;
    public const int ErrorOutOfMemory = 2;

    public static delegate* unmanaged<uint, int> cuInit;
    public static delegate* unmanaged<int*, int> cuDriverGetVersion;
    public static delegate* unmanaged<int*, int> cuDeviceGetCount;
    public static delegate* unmanaged<int*, int, int> cuDeviceGet;
    public static delegate* unmanaged<byte*, int, int, int> cuDeviceGetName;
    public static delegate* unmanaged<int*, int, int, int> cuDeviceGetAttribute;
    public static delegate* unmanaged<nuint*, int, int> cuDeviceTotalMem;
    public static delegate* unmanaged<nint*, int, int> cuDevicePrimaryCtxRetain;
    public static delegate* unmanaged<nint, int> cuCtxSetCurrent;
    public static delegate* unmanaged<int> cuCtxSynchronize;
    public static delegate* unmanaged<nint*, uint, int> cuStreamCreate;
    public static delegate* unmanaged<nint, int> cuStreamSynchronize;
    public static delegate* unmanaged<ulong*, nuint, int> cuMemAlloc;
    public static delegate* unmanaged<ulong, int> cuMemFree;
    public static delegate* unmanaged<nuint*, nuint*, int> cuMemGetInfo;
    public static delegate* unmanaged<void**, nuint, uint, int> cuMemHostAlloc;
    public static delegate* unmanaged<void*, int> cuMemFreeHost;
    public static delegate* unmanaged<ulong, void*, nuint, nint, int> cuMemcpyHtoDAsync;
    public static delegate* unmanaged<void*, ulong, nuint, nint, int> cuMemcpyDtoHAsync;
    public static delegate* unmanaged<ulong, ulong, nuint, nint, int> cuMemcpyDtoDAsync;
    public static delegate* unmanaged<ulong, byte, nuint, nint, int> cuMemsetD8Async;
    public static delegate* unmanaged<ulong, ushort, nuint, nint, int> cuMemsetD16Async;
    public static delegate* unmanaged<ulong, uint, nuint, nint, int> cuMemsetD32Async;
    public static delegate* unmanaged<nint*, void*, int> cuModuleLoadData;
    public static delegate* unmanaged<nint*, nint, byte*, int> cuModuleGetFunction;
    public static delegate* unmanaged<nint, int, int, int> cuFuncSetAttribute;
    public static delegate* unmanaged<int*, int, nint, int> cuFuncGetAttribute;
    public static delegate* unmanaged<int*, nint, int, nuint, int> cuOccupancyMaxActiveBlocksPerMultiprocessor;   // optional
    public static delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int> cuLaunchKernel;
    public static delegate* unmanaged<LaunchConfig*, nint, void**, void**, int> cuLaunchKernelEx;   // optional (CUDA 12+)
    public static delegate* unmanaged<nint*, uint, int> cuEventCreate;
    public static delegate* unmanaged<nint, nint, int> cuEventRecord;
    public static delegate* unmanaged<nint, int> cuEventSynchronize;
    public static delegate* unmanaged<float*, nint, nint, int> cuEventElapsedTime;
    public static delegate* unmanaged<nint, int> cuEventDestroy;
    public static delegate* unmanaged<int, byte**, int> cuGetErrorName;
    public static delegate* unmanaged<int, byte**, int> cuGetErrorString;
    // CUDA graphs (optional: decode-step capture)
    public static delegate* unmanaged<nint, int, int> cuStreamBeginCapture;
    public static delegate* unmanaged<nint, nint*, int> cuStreamEndCapture;
    public static delegate* unmanaged<nint*, nint, ulong, int> cuGraphInstantiateWithFlags;
    public static delegate* unmanaged<nint, nint, int> cuGraphLaunch;
    public static delegate* unmanaged<nint, int> cuGraphExecDestroy;
    public static delegate* unmanaged<nint, int> cuGraphDestroy;
    /// <summary>Where Nsight Compute / Systems start and stop collecting under --profile-from-start off (null: no such export).</summary>
    public static delegate* unmanaged<int> cuProfilerStart;
    public static delegate* unmanaged<int> cuProfilerStop;

    public static bool IsBound { get; private set; }

    public static void Bind(nint lib)
    {
        const string n = "libcuda.so.1";
        cuInit = (delegate* unmanaged<uint, int>)CudaLibraries.Export(lib, n, "cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, int>)CudaLibraries.Export(lib, n, "cuDriverGetVersion");
        cuDeviceGetCount = (delegate* unmanaged<int*, int>)CudaLibraries.Export(lib, n, "cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)CudaLibraries.Export(lib, n, "cuDeviceGet");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)CudaLibraries.Export(lib, n, "cuDeviceGetName");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)CudaLibraries.Export(lib, n, "cuDeviceGetAttribute");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)CudaLibraries.Export(lib, n, "cuDeviceTotalMem_v2");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)CudaLibraries.Export(lib, n, "cuDevicePrimaryCtxRetain");
        cuCtxSetCurrent = (delegate* unmanaged<nint, int>)CudaLibraries.Export(lib, n, "cuCtxSetCurrent");
        cuCtxSynchronize = (delegate* unmanaged<int>)CudaLibraries.Export(lib, n, "cuCtxSynchronize");
        cuStreamCreate = (delegate* unmanaged<nint*, uint, int>)CudaLibraries.Export(lib, n, "cuStreamCreate");
        cuStreamSynchronize = (delegate* unmanaged<nint, int>)CudaLibraries.Export(lib, n, "cuStreamSynchronize");
        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)CudaLibraries.Export(lib, n, "cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, int>)CudaLibraries.Export(lib, n, "cuMemFree_v2");
        cuMemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)CudaLibraries.Export(lib, n, "cuMemGetInfo_v2");
        cuMemHostAlloc = (delegate* unmanaged<void**, nuint, uint, int>)CudaLibraries.Export(lib, n, "cuMemHostAlloc");
        cuMemFreeHost = (delegate* unmanaged<void*, int>)CudaLibraries.Export(lib, n, "cuMemFreeHost");
        cuMemcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemcpyHtoDAsync_v2");
        cuMemcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemcpyDtoHAsync_v2");
        cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemcpyDtoDAsync_v2");
        cuMemsetD8Async = (delegate* unmanaged<ulong, byte, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemsetD8Async");
        cuMemsetD16Async = (delegate* unmanaged<ulong, ushort, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemsetD16Async");
        cuMemsetD32Async = (delegate* unmanaged<ulong, uint, nuint, nint, int>)CudaLibraries.Export(lib, n, "cuMemsetD32Async");
        cuModuleLoadData = (delegate* unmanaged<nint*, void*, int>)CudaLibraries.Export(lib, n, "cuModuleLoadData");
        cuModuleGetFunction = (delegate* unmanaged<nint*, nint, byte*, int>)CudaLibraries.Export(lib, n, "cuModuleGetFunction");
        cuFuncSetAttribute = (delegate* unmanaged<nint, int, int, int>)CudaLibraries.Export(lib, n, "cuFuncSetAttribute");
        cuFuncGetAttribute = (delegate* unmanaged<int*, int, nint, int>)CudaLibraries.Export(lib, n, "cuFuncGetAttribute");
        cuLaunchKernel = (delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int>)CudaLibraries.Export(lib, n, "cuLaunchKernel");
        cuEventCreate = (delegate* unmanaged<nint*, uint, int>)CudaLibraries.Export(lib, n, "cuEventCreate");
        cuEventRecord = (delegate* unmanaged<nint, nint, int>)CudaLibraries.Export(lib, n, "cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<nint, int>)CudaLibraries.Export(lib, n, "cuEventSynchronize");
        cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, int>)CudaLibraries.Export(lib, n, "cuEventElapsedTime_v2", "cuEventElapsedTime");
        cuEventDestroy = (delegate* unmanaged<nint, int>)CudaLibraries.Export(lib, n, "cuEventDestroy_v2");
        cuGetErrorName = (delegate* unmanaged<int, byte**, int>)CudaLibraries.Export(lib, n, "cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<int, byte**, int>)CudaLibraries.Export(lib, n, "cuGetErrorString");
        cuLaunchKernelEx = (delegate* unmanaged<LaunchConfig*, nint, void**, void**, int>)CudaLibraries.OptionalExport(lib, "cuLaunchKernelEx");
        cuOccupancyMaxActiveBlocksPerMultiprocessor = (delegate* unmanaged<int*, nint, int, nuint, int>)CudaLibraries.OptionalExport(lib, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        cuStreamBeginCapture = (delegate* unmanaged<nint, int, int>)CudaLibraries.OptionalExport(lib, "cuStreamBeginCapture_v2");
        cuStreamEndCapture = (delegate* unmanaged<nint, nint*, int>)CudaLibraries.OptionalExport(lib, "cuStreamEndCapture");
        cuGraphInstantiateWithFlags = (delegate* unmanaged<nint*, nint, ulong, int>)CudaLibraries.OptionalExport(lib, "cuGraphInstantiateWithFlags");
        cuGraphLaunch = (delegate* unmanaged<nint, nint, int>)CudaLibraries.OptionalExport(lib, "cuGraphLaunch");
        cuGraphExecDestroy = (delegate* unmanaged<nint, int>)CudaLibraries.OptionalExport(lib, "cuGraphExecDestroy");
        cuGraphDestroy = (delegate* unmanaged<nint, int>)CudaLibraries.OptionalExport(lib, "cuGraphDestroy");
        cuProfilerStart = (delegate* unmanaged<int>)CudaLibraries.OptionalExport(lib, "cuProfilerStart");
        cuProfilerStop = (delegate* unmanaged<int>)CudaLibraries.OptionalExport(lib, "cuProfilerStop");
        IsBound = true;
    }

    /// <summary>"CUDA_ERROR_OUT_OF_MEMORY (out of memory)".</summary>
    public static string Describe(int result)
    {
        if (!IsBound) return $"CUresult {result}";
        byte* name = null, text = null;
        cuGetErrorName(result, &name);
        cuGetErrorString(result, &text);
        return $"{CudaLibraries.Utf8(name)} ({CudaLibraries.Utf8(text)})";
    }

    public static void Check(int result, string call)
    {
        if (result != 0) throw new CudaException($"{call} failed: {Describe(result)}", result);
    }
}

/// <summary>CUlaunchConfig (cuda.h): grid, block, dynamic shared bytes, stream and the launch attributes.</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public unsafe struct LaunchConfig
{
    public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
    public nint Stream;
    public LaunchAttribute* Attributes;
    public uint AttributeCount;
}

/// <summary>CUlaunchAttribute (cuda.h): an id, padding to 8 bytes, a 64-byte value of which the first int is used here.</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 72)]
public struct LaunchAttribute
{
    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the kernel may start before the previous one on the stream
    /// has finished; it waits for it with griddepcontrol.wait (programmatic dependent launch, sm_90+).</summary>
    public const int ProgrammaticStreamSerialization = 6;
    [System.Runtime.InteropServices.FieldOffset(0)] public int Id;
    [System.Runtime.InteropServices.FieldOffset(8)] public int Value;
}
