namespace Mamba4.Backends.Cuda.Native;

/// <summary>NVRTC (libnvrtc.so.13): compiles CUDA C++ source to a cubin for the device's own architecture at run time.</summary>
internal static unsafe class Nvrtc
{
    public static delegate* unmanaged<int*, int*, int> nvrtcVersion;
    public static delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int> nvrtcCreateProgram;
    public static delegate* unmanaged<nint, int, byte**, int> nvrtcCompileProgram;
    public static delegate* unmanaged<nint, nuint*, int> nvrtcGetProgramLogSize;
    public static delegate* unmanaged<nint, byte*, int> nvrtcGetProgramLog;
    public static delegate* unmanaged<nint, nuint*, int> nvrtcGetCUBINSize;
    public static delegate* unmanaged<nint, byte*, int> nvrtcGetCUBIN;
    public static delegate* unmanaged<nint*, int> nvrtcDestroyProgram;
    public static delegate* unmanaged<int, byte*> nvrtcGetErrorString;

    public static void Bind(nint lib)
    {
        const string n = "libnvrtc.so.13";
        nvrtcVersion = (delegate* unmanaged<int*, int*, int>)CudaLibraries.Export(lib, n, "nvrtcVersion");
        nvrtcCreateProgram = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)CudaLibraries.Export(lib, n, "nvrtcCreateProgram");
        nvrtcCompileProgram = (delegate* unmanaged<nint, int, byte**, int>)CudaLibraries.Export(lib, n, "nvrtcCompileProgram");
        nvrtcGetProgramLogSize = (delegate* unmanaged<nint, nuint*, int>)CudaLibraries.Export(lib, n, "nvrtcGetProgramLogSize");
        nvrtcGetProgramLog = (delegate* unmanaged<nint, byte*, int>)CudaLibraries.Export(lib, n, "nvrtcGetProgramLog");
        nvrtcGetCUBINSize = (delegate* unmanaged<nint, nuint*, int>)CudaLibraries.Export(lib, n, "nvrtcGetCUBINSize");
        nvrtcGetCUBIN = (delegate* unmanaged<nint, byte*, int>)CudaLibraries.Export(lib, n, "nvrtcGetCUBIN");
        nvrtcDestroyProgram = (delegate* unmanaged<nint*, int>)CudaLibraries.Export(lib, n, "nvrtcDestroyProgram");
        nvrtcGetErrorString = (delegate* unmanaged<int, byte*>)CudaLibraries.Export(lib, n, "nvrtcGetErrorString");
    }

    public static void Check(int result, string call)
    {
        if (result != 0) throw new CudaException($"{call} failed: {CudaLibraries.Utf8(nvrtcGetErrorString(result))} (nvrtcResult {result})", result);
    }

    public static string Version()
    {
        int major, minor;
        Check(nvrtcVersion(&major, &minor), "nvrtcVersion");
        return $"{major}.{minor}";
    }
}
