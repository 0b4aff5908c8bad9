namespace Mamba4.Backends.Cuda.Native;

/// <summary>A failed CUDA driver, NVRTC or cuBLAS call: names the call, the error and (for launches) the kernel and its shape.</summary>
public class CudaException : Exception
{
    public CudaException(string message, int code = 0) : base(message) => Code = code;

    /// <summary>The library's status code (CUresult, nvrtcResult or cublasStatus_t).</summary>
    public int Code { get; }
}

/// <summary>cuMemAlloc failed even after the allocator returned its cached blocks to the driver.</summary>
public sealed class CudaOutOfMemoryException : OutOfMemoryException
{
    public CudaOutOfMemoryException(string message) : base(message) { }
}

/// <summary>NVRTC rejected a kernel source; <see cref="Log"/> holds the compiler's log.</summary>
public sealed class CudaCompileException : CudaException
{
    public CudaCompileException(string source, string options, string log)
        : base($"NVRTC could not compile {source} (options: {options}):\n{log}") => Log = log;

    public string Log { get; }
}
