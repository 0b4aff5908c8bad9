using Mamba4.Backends;
using Mamba4.Backends.Cuda;

namespace Mamba4.Tests;

/// <summary>The engine's environment is parsed in one place, strictly: a malformed value names the variable.</summary>
public class EngineSettingsTests
{
    private static EngineSettings Parse(params (string Name, string Value)[] variables) =>
        EngineSettings.FromVariables(name => variables.FirstOrDefault(v => v.Name == name).Value);

    [Fact]
    public void NoVariablesGiveTheDefaults() => Assert.Equal(EngineSettings.Default, Parse());

    [Fact]
    public void EachVariableSetsItsSetting()
    {
        var s = Parse(("MAMBA4_BLAS", "OpenBLAS"), ("MAMBA4_THREADS", "3"), ("MAMBA4_CUDA_MATMUL", "bf16"), ("MAMBA4_CUDA_GRAPH", "0"),
            ("MAMBA4_CUDA_FUSED_STEP", "0"), ("MAMBA4_CUDA_SYNC", "true"), ("MAMBA4_DISABLE_CUDA", "1"), ("MAMBA4_CUDA_CACHE", "/tmp/k"), ("MAMBA4_CUDA_LIBS", "/a:/b"), ("CUDA_HOME", "/c"));
        Assert.Equal("openblas", s.Blas);
        Assert.Equal(3, s.Threads);
        Assert.Equal(MatmulPrecision.Bf16, s.CudaMatmul);
        Assert.False(s.CudaGraph);
        Assert.False(s.CudaFusedStep);
        Assert.True(EngineSettings.Default.CudaFusedStep);
        Assert.True(s.CudaSyncEveryLaunch);
        Assert.True(s.CudaDisabled);
        Assert.Equal("/tmp/k", s.CudaCacheDirectory);
        Assert.Equal(["/a", "/b", "/c"], s.CudaLibraryFolders);
    }

    [Theory]
    [InlineData("MAMBA4_THREADS", "abc", "MAMBA4_THREADS=abc: expected a whole number in [1, 4096]")]
    [InlineData("MAMBA4_THREADS", "0", "MAMBA4_THREADS=0: expected a whole number in [1, 4096]")]
    [InlineData("MAMBA4_BLAS", "mkl", "MAMBA4_BLAS=mkl: expected auto, openblas or managed")]
    [InlineData("MAMBA4_CUDA_MATMUL", "fp8", "MAMBA4_CUDA_MATMUL=fp8: expected f32, tf32 or bf16")]
    [InlineData("MAMBA4_CUDA_GRAPH", "maybe", "MAMBA4_CUDA_GRAPH=maybe: expected 1/true or 0/false")]
    public void AMalformedValueNamesTheVariable(string name, string value, string expected) =>
        Assert.Equal(expected, Assert.Throws<ArgumentException>(() => Parse((name, value))).Message);

    [Fact]
    public void TheToolRefusesAMalformedValueInOneLine()
    {
        var (code, stdout, stderr) = CliTests.RunWith(new Dictionary<string, string> { ["MAMBA4_THREADS"] = "abc" }, "info");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal("error: MAMBA4_THREADS=abc: expected a whole number in [1, 4096]", stderr.Trim());
    }

    [Fact]
    public void RunJsonRecordsTheSettings()
    {
        var json = EngineSettings.Default.ToJson();
        foreach (var key in new[] { "library_version", "blas", "cpu_gemm", "threads", "cpu_gemv", "cpu_narrow", "cuda_matmul", "scan_plan", "cuda_graph", "cuda_fused_step" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Contains("+", json["library_version"]!.GetValue<string>());   // the git commit the library was built from
    }
}
