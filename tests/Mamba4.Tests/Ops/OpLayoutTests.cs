namespace Mamba4.Tests;

/// <summary>
/// One op, one name (docs/ARCHITECTURE.md, "How to add an op"): an op's stem names its Ops/ file, its CPU and CUDA
/// partials (CpuBackend.Stem.cs, CudaBackend.Stem.cs) and its kernel file (Kernels/stem.cu, the stem in snake_case).
/// Read from the source tree, so a file added or renamed on one side only fails here.
/// </summary>
public class OpLayoutTests
{
    /// <summary>Backend partials with no op and kernel file of their own: GEMM (cuBLAS; Linear and MatMul use it).</summary>
    private static readonly string[] WithoutKernelFile = ["Gemm"];

    /// <summary>Backend partials that no Ops/ file fronts: GEMM (Linear, MatMul) and the optimizer (Training/AdamW.cs).</summary>
    private static readonly string[] WithoutOp = ["Gemm", "Optimizer"];

    private static string Backends => Path.Combine(SourceRoot(), "src", "Mamba4", "Backends");

    private static string SourceRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Mamba4.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("no Mamba4.slnx above " + AppContext.BaseDirectory);
    }

    private static SortedSet<string> Partials(string folder, string type) =>
        new(Directory.GetFiles(Path.Combine(Backends, folder), type + ".*.cs").Select(f => Path.GetFileName(f)[(type.Length + 1)..^3]));

    internal static string Pascal(string snake) => string.Concat(snake.Split('_').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    [Fact]
    public void TheCpuAndCudaBackendsHaveTheSamePartialFiles()
    {
        Assert.Equal(Partials("Cpu", "CpuBackend"), Partials("Cuda", "CudaBackend"));
    }

    [Fact]
    public void EveryKernelFileHasPartialsOfTheSameStemAndEveryPartialAKernelFile()
    {
        var partials = Partials("Cuda", "CudaBackend");
        var kernels = new SortedSet<string>(Directory.GetFiles(Path.Combine(Backends, "Cuda", "Kernels"), "*.cu").Select(f => Pascal(Path.GetFileNameWithoutExtension(f))));
        Assert.Empty(kernels.Except(partials));
        Assert.Empty(partials.Except(kernels).Except(WithoutKernelFile));
    }

    [Fact]
    public void EveryBackendPartialHasAnOpOfTheSameStem()
    {
        var ops = Directory.GetFiles(Path.Combine(SourceRoot(), "src", "Mamba4", "Ops"), "*.cs").Select(Path.GetFileNameWithoutExtension).ToHashSet();
        Assert.Empty(Partials("Cpu", "CpuBackend").Except(ops!).Except(WithoutOp));
    }
}
