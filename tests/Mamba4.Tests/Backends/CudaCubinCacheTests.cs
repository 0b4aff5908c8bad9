using System.Security.Cryptography;
using Mamba4.Backends.Cuda;

namespace Mamba4.Tests;

/// <summary>The NVRTC cubin cache (no GPU needed: a counting stand-in for the compiler): a second process reads what the
/// first compiled; a file whose hash does not match (corrupted, torn, an older raw cubin) is compiled again and replaced;
/// a folder that cannot be written costs only the cache.</summary>
public sealed class CudaCubinCacheTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-cubin-").FullName;
    private readonly byte[] _cubin = [0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3, 4, 5, 6, 7, 8, 9];
    private int _compiles;

    private byte[] Compile() { _compiles++; return (byte[])_cubin.Clone(); }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SecondReadComesFromTheFileWithoutCompiling()
    {
        var path = Path.Combine(_dir, "sub", "scan-sm_90-abc.cubin");
        Assert.Equal(_cubin, CudaCompiler.Cached(path, Compile));
        Assert.Equal(_cubin, CudaCompiler.Cached(path, Compile));
        Assert.Equal(1, _compiles);
        var file = File.ReadAllBytes(path);   // layout: SHA-256 of the cubin, then the cubin
        Assert.Equal(SHA256.HashData(_cubin), file[..32]);
        Assert.Equal(_cubin, file[32..]);
    }

    [Fact]
    public void ACompileIsAnnouncedWithWhatAndWhereAndItsEndButACacheHitSaysNothing()
    {
        var path = Path.Combine(_dir, "sub", "scan-sm_90-abc.cubin");
        var lines = new List<string>();
        CudaCompiler.Cached(path, Compile, lines.Add, "selective_scan.cu (group 2) for sm_90");
        Assert.Equal(2, lines.Count);
        Assert.Equal($"compiling CUDA kernels selective_scan.cu (group 2) for sm_90: first use, cached under {Path.Combine(_dir, "sub")} ...", lines[0]);
        Assert.Matches(@"^compiled CUDA kernels selective_scan\.cu \(group 2\) for sm_90 in \d+\.\d s$", lines[1]);
        CudaCompiler.Cached(path, Compile, lines.Add, "selective_scan.cu (group 2) for sm_90");
        Assert.Equal(2, lines.Count);
        Assert.Equal(1, _compiles);
    }

    [Theory]
    [InlineData("flip")]       // one bit of the cubin changed
    [InlineData("torn")]       // cut short
    [InlineData("hash-only")]  // nothing after the hash
    [InlineData("raw")]        // an older cache file: the bare cubin
    [InlineData("empty")]
    public void AFileThatDoesNotCheckIsCompiledAgainAndReplaced(string damage)
    {
        var path = Path.Combine(_dir, "k.cubin");
        CudaCompiler.Cached(path, Compile);
        var file = File.ReadAllBytes(path);
        File.WriteAllBytes(path, damage switch
        {
            "flip" => file.Select((b, i) => i == file.Length - 3 ? (byte)(b ^ 4) : b).ToArray(),
            "torn" => file[..^4],
            "hash-only" => file[..32],
            "raw" => _cubin,
            _ => [],
        });
        Assert.Null(CudaCompiler.ReadCached(path));
        Assert.Equal(_cubin, CudaCompiler.Cached(path, Compile));
        Assert.Equal(2, _compiles);
        Assert.Equal(_cubin, CudaCompiler.ReadCached(path));   // repaired
    }

    [Fact]
    public void AFolderThatCannotBeWrittenStillGivesTheCompiledCubin()
    {
        var blocker = Path.Combine(_dir, "not-a-folder");
        File.WriteAllText(blocker, "x");
        var path = Path.Combine(blocker, "k.cubin");
        Assert.Equal(_cubin, CudaCompiler.Cached(path, Compile));
        Assert.Equal(_cubin, CudaCompiler.Cached(path, Compile));
        Assert.Equal(2, _compiles);
        Assert.Null(CudaCompiler.ReadCached(Path.Combine(_dir, "missing.cubin")));
    }
}
