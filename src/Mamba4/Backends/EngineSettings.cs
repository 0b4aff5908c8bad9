using System.Reflection;
using System.Text.Json.Nodes;
using Mamba4.Backends.Cuda;

namespace Mamba4.Backends;

/// <summary>The few-row CPU matrix kernels allowed (each keeps the single-row dot order, so results are bit-identical):
/// all that the CPU supports, up to the 3×2 tiles, or the 3×1 rows only.</summary>
public enum CpuGemvTiles
{
    Auto,
    Up3x2,
    Rows,
}

/// <summary>The CPU kernels that multiply by BF16/F16/I8 weights (<see cref="Cpu.CpuNarrowGemm"/>): the widest this CPU has
/// (AVX-512 where present), the portable 256-bit vector path, or the scalar loop. Tests and benchmarks force the last two.</summary>
public enum CpuNarrowKernel
{
    Auto,
    Vector256,
    Scalar,
}

/// <summary>
/// Every engine-wide setting that changes numerics or where work runs, in one explicit object: the CPU GEMM library and
/// threads, the GPU matmul precision, the scan variant, CUDA graphs. The environment is read here only
/// (<see cref="FromEnvironment"/>, by the tool at start-up); the library takes it through
/// <see cref="Backend.Configure"/>, and each run records <see cref="ToJson"/> in run.json and checkpoint metadata.
/// </summary>
public sealed record EngineSettings
{
    /// <summary>CPU matrix products: <c>auto</c> (OpenBLAS when it loads, except where the managed AVX-512 kernel measured faster), <c>openblas</c> or <c>managed</c>. (MAMBA4_BLAS)</summary>
    public string Blas { get; init; } = "auto";
    /// <summary>CPU worker threads; 0 = one per core. (MAMBA4_THREADS)</summary>
    public int Threads { get; init; }
    /// <summary>The few-row CPU matrix kernels (decoding, batched steps); tests and benchmarks compare them.</summary>
    public CpuGemvTiles CpuGemvTiles { get; init; }
    /// <summary>The CPU kernels for BF16/F16/I8 weights; tests and benchmarks compare them.</summary>
    public CpuNarrowKernel CpuNarrowKernel { get; init; }
    /// <summary>GPU F32 matrix products, and the SSD scan's chunk products (TF32 under tf32 or bf16). (MAMBA4_CUDA_MATMUL = f32 | tf32 | bf16)</summary>
    public MatmulPrecision CudaMatmul { get; init; } = MatmulPrecision.F32;
    /// <summary>The CUDA selective scan's plan, 0 = chosen per shape: forward chunk length, forward states per thread,
    /// backward chunk length, backward block size (tests and benchmarks force them; chunking changes summation order).</summary>
    public int ScanForwardChunk { get; init; }
    public int ScanForwardStatesPerThread { get; init; }
    public int ScanBackwardChunk { get; init; }
    public int ScanBackwardBlock { get; init; }
    /// <summary>The CUDA selective scan's forward: <see cref="ScanForwardPlan.Auto"/> (the chunked kernels), or the
    /// time-parallel lanes kernel (one pass, N = 16, selective; two register budgets) where forced; tests and benchmarks force them.</summary>
    public ScanForwardPlan ScanForward { get; init; }
    /// <summary>Capture a GPU decoding step as a CUDA graph and replay it. (MAMBA4_CUDA_GRAPH = 0 turns it off)</summary>
    public bool CudaGraph { get; init; } = true;
    /// <summary>Decode Mamba-1 layers on a GPU with the fused step (F.MambaStep: four kernels a layer) and the head with its
    /// arg-max on the device (F.MambaHeadStep). (MAMBA4_CUDA_FUSED_STEP = 0 runs the unfused ops)</summary>
    public bool CudaFusedStep { get; init; } = true;
    /// <summary>Wait after every kernel launch so that a fault names its kernel (slow; debugging). (MAMBA4_CUDA_SYNC)</summary>
    public bool CudaSyncEveryLaunch { get; init; }
    /// <summary>Never use a GPU, even where one is present. (MAMBA4_DISABLE_CUDA)</summary>
    public bool CudaDisabled { get; init; }
    /// <summary>Where NVRTC's compiled kernels are cached; null = ~/.cache/mamba4/cuda. (MAMBA4_CUDA_CACHE)</summary>
    public string? CudaCacheDirectory { get; init; }
    /// <summary>Extra folders to look for libcuda/libnvrtc/libcublas in, searched first. (MAMBA4_CUDA_LIBS, CUDA_HOME, CUDA_PATH)</summary>
    public IReadOnlyList<string> CudaLibraryFolders { get; init; } = [];
    /// <summary>Where the notices of a kernel file compiled at first use go (NVRTC takes seconds to a minute a file; the
    /// tool writes them to stderr), one line when a compile starts and one when it ends; null = nowhere. Not numerics.</summary>
    public Action<string>? CudaCompileLog { get; init; }

    public static EngineSettings Default { get; } = new();

    /// <summary>The settings named by MAMBA4_* variables (and CUDA_HOME/CUDA_PATH); a malformed value is an ArgumentException naming the variable.</summary>
    public static EngineSettings FromEnvironment() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary>As <see cref="FromEnvironment"/>, from any lookup (tests).</summary>
    public static EngineSettings FromVariables(Func<string, string?> variable)
    {
        string? Get(string name) => variable(name) is { } v && v.Trim().Length > 0 ? v.Trim() : null;
        bool Flag(string name, bool fallback) => Get(name)?.ToLowerInvariant() switch
        {
            null => fallback,
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            var other => throw new ArgumentException($"{name}={other}: expected 1/true or 0/false"),
        };
        var d = Default;
        return new EngineSettings
        {
            Blas = Get("MAMBA4_BLAS")?.ToLowerInvariant() switch
            {
                null => d.Blas,
                var b when b is "auto" or "openblas" or "managed" => b,
                var other => throw new ArgumentException($"MAMBA4_BLAS={other}: expected auto, openblas or managed"),
            },
            Threads = Get("MAMBA4_THREADS") is { } t
                ? int.TryParse(t, out var n) && n is > 0 and <= 4096 ? n : throw new ArgumentException($"MAMBA4_THREADS={t}: expected a whole number in [1, 4096]")
                : d.Threads,
            CudaMatmul = ParseMatmul(Get("MAMBA4_CUDA_MATMUL"), "MAMBA4_CUDA_MATMUL") ?? d.CudaMatmul,
            CudaGraph = Flag("MAMBA4_CUDA_GRAPH", d.CudaGraph),
            CudaFusedStep = Flag("MAMBA4_CUDA_FUSED_STEP", d.CudaFusedStep),
            CudaSyncEveryLaunch = Flag("MAMBA4_CUDA_SYNC", d.CudaSyncEveryLaunch),
            CudaDisabled = Flag("MAMBA4_DISABLE_CUDA", d.CudaDisabled),
            CudaCacheDirectory = Get("MAMBA4_CUDA_CACHE"),
            CudaLibraryFolders = new[] { "MAMBA4_CUDA_LIBS", "CUDA_HOME", "CUDA_PATH" }
                .SelectMany(v => Get(v)?.Split(':', StringSplitOptions.RemoveEmptyEntries) ?? []).ToArray(),
        };
    }

    /// <summary>f32 | tf32 | bf16 (null → null); anything else is an ArgumentException naming <paramref name="source"/>.</summary>
    private static MatmulPrecision? ParseMatmul(string? text, string source) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "f32" => MatmulPrecision.F32,
        "tf32" => MatmulPrecision.Tf32,
        "bf16" => MatmulPrecision.Bf16,
        var other => throw new ArgumentException($"{source}={other}: expected f32, tf32 or bf16"),
    };

    /// <summary>Environment variables the engine reads (for `mamba4 info`).</summary>
    public static readonly string[] Variables = ["MAMBA4_BLAS", "MAMBA4_THREADS", "MAMBA4_CUDA_MATMUL", "MAMBA4_CUDA_GRAPH", "MAMBA4_CUDA_FUSED_STEP", "MAMBA4_CUDA_SYNC", "MAMBA4_DISABLE_CUDA", "MAMBA4_CUDA_CACHE", "MAMBA4_CUDA_LIBS"];

    /// <summary>The library's version and the git commit it was built from ("0.1.0+abc1234…").</summary>
    public static string LibraryVersion =>
        typeof(EngineSettings).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>What affects numerics, as recorded in run.json, checkpoint metadata and `mamba4 info`: these settings
    /// and what they resolved to on this machine (the GEMM kernel or BLAS library actually used, the thread count).</summary>
    public JsonObject ToJson() => new()
    {
        ["library_version"] = LibraryVersion,
        ["blas"] = Blas,
        ["cpu_gemm"] = Cpu.CpuGemm.BlasDescription,
        ["threads"] = Cpu.CpuParallel.Threads,
        ["cpu_gemv"] = Cpu.CpuGemv.Tile4x3 ? "4x3 tiles" : Cpu.CpuGemv.Wide ? "3x2 tiles" : "rows",
        ["cpu_narrow"] = Cpu.CpuNarrowGemm.Kernel switch { CpuNarrowKernel.Auto => "avx-512", CpuNarrowKernel.Vector256 => "vector256", _ => "scalar" },
        ["cuda_matmul"] = CudaMatmul.ToString().ToLowerInvariant(),
        ["scan_plan"] = ScanForward == ScanForwardPlan.Auto && ScanForwardChunk == 0 && ScanForwardStatesPerThread == 0 && ScanBackwardChunk == 0 && ScanBackwardBlock == 0 ? "auto"
            : $"forward {ScanForward.ToString().ToLowerInvariant()}, forward chunk {ScanForwardChunk}, states/thread {ScanForwardStatesPerThread}, backward chunk {ScanBackwardChunk}, block {ScanBackwardBlock}",
        ["cuda_graph"] = CudaGraph,
        ["cuda_fused_step"] = CudaFusedStep,
    };
}
