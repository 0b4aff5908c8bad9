namespace Mamba4.Backends.Cuda.Native;

/// <summary>cuBLAS (libcublas.so.13, which needs libcublasLt.so.13): column-major SGEMM and GemmEx (BF16 inputs, F32 accumulation) on the backend's stream.</summary>
internal static unsafe class Cublas
{
    public const int OpN = 0, OpT = 1;
    /// <summary>cublasMath_t: default (no TF32 for SGEMM) and TF32 tensor-core math.</summary>
    public const int DefaultMath = 0, Tf32TensorOpMath = 3;

    public static delegate* unmanaged<nint*, int> cublasCreate;
    public static delegate* unmanaged<nint, int> cublasDestroy;
    public static delegate* unmanaged<nint, nint, int> cublasSetStream;
    public static delegate* unmanaged<nint, int, int> cublasSetMathMode;
    public static delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, nint, int, float*, nint, int, int> cublasSgemm;
    public static delegate* unmanaged<int, byte*> cublasGetStatusString;
    /// <summary>cublasSgemmStridedBatched: as cublasSgemm, then the count of matrices and, after each of A, B, C, its stride in elements.</summary>
    public static delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, long, nint, int, long, float*, nint, int, long, int, int> cublasSgemmStridedBatched;
    /// <summary>cudaDataType_t and cublasComputeType_t values used with cublasGemmEx.</summary>
    public const int R32F = 0, R16F = 2, R16BF = 14, Compute32F = 68, GemmDefault = -1;
    public static delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, int, nint, int, int, float*, nint, int, int, int, int, int> cublasGemmEx;

    public static void Bind(nint lib)
    {
        const string n = "libcublas.so.13";
        cublasCreate = (delegate* unmanaged<nint*, int>)CudaLibraries.Export(lib, n, "cublasCreate_v2");
        cublasDestroy = (delegate* unmanaged<nint, int>)CudaLibraries.Export(lib, n, "cublasDestroy_v2");
        cublasSetStream = (delegate* unmanaged<nint, nint, int>)CudaLibraries.Export(lib, n, "cublasSetStream_v2");
        cublasSetMathMode = (delegate* unmanaged<nint, int, int>)CudaLibraries.Export(lib, n, "cublasSetMathMode");
        cublasSgemm = (delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, nint, int, float*, nint, int, int>)CudaLibraries.Export(lib, n, "cublasSgemm_v2");
        cublasSgemmStridedBatched = (delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, long, nint, int, long, float*, nint, int, long, int, int>)CudaLibraries.Export(lib, n, "cublasSgemmStridedBatched");
        cublasGetStatusString = (delegate* unmanaged<int, byte*>)CudaLibraries.Export(lib, n, "cublasGetStatusString");
        cublasGemmEx = (delegate* unmanaged<nint, int, int, int, int, int, float*, nint, int, int, nint, int, int, float*, nint, int, int, int, int, int>)CudaLibraries.Export(lib, n, "cublasGemmEx");
    }

    public static void Check(int status, string call)
    {
        if (status != 0) throw new CudaException($"{call} failed: {CudaLibraries.Utf8(cublasGetStatusString(status))} (cublasStatus {status})", status);
    }
}
