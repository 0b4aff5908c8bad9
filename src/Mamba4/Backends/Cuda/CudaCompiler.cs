using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Mamba4.Backends.Cuda.Native;

namespace Mamba4.Backends.Cuda;

/// <summary>
/// Compiles the embedded kernel sources (<c>Kernels/*.cu</c>, each prefixed with <c>common.cuh</c>) with NVRTC
/// for one architecture (sm_XX), straight to a cubin. Cubins are cached on disk under
/// $MAMBA4_CUDA_CACHE (default ~/.cache/mamba4/cuda), named by the architecture and a hash of source, options, NVRTC
/// and driver version, each file the cubin's SHA-256 followed by the cubin, written atomically; so processes (and
/// machines, with the folder copied) share one compile, and a file whose hash does not match is compiled again and
/// replaced. A compile error throws <see cref="CudaCompileException"/> with the log.
/// </summary>
internal static unsafe class CudaCompiler
{
    private const string ResourcePrefix = "Mamba4.Cuda.";

    /// <summary>The text of an embedded kernel file (e.g. "selective_scan.cu").</summary>
    public static string Source(string file)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourcePrefix + file)
            ?? throw new FileNotFoundException($"kernel source {file} is not embedded in {Assembly.GetExecutingAssembly().GetName().Name}");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    /// <summary>Every embedded kernel file (*.cu).</summary>
    public static IEnumerable<string> KernelFiles() =>
        Assembly.GetExecutingAssembly().GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..]);

    /// <summary>Every (file, group) the backend may compile (<see cref="Cubin"/>): each compile group of a file that has them
    /// and group −1 (its kernels outside every group alone), else the whole file (group 0).</summary>
    public static IEnumerable<(string File, int Group)> CompileUnits() =>
        KernelFiles().SelectMany(file => (Kernels.Groups.TryGetValue(file, out var groups) ? groups.Values.Where(g => g > 0).Distinct().Append(-1) : [0])
            .Select(group => (file, group)));

    /// <summary>common.cuh + the file, with #line so NVRTC's log names the file and line.</summary>
    public static string Program(string file) =>
        "#line 1 \"common.cuh\"\n" + Source("common.cuh") + "\n#line 1 \"" + file + "\"\n" + Source(file);

    public static string[] Options(string arch) => [$"--gpu-architecture={arch}", "--std=c++17", "-DMAMBA4_NVRTC=1"];

    public static string CacheFolder =>
        Backend.Settings.CudaCacheDirectory is { } dir ? dir
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "mamba4", "cuda");

    /// <summary>The cubin of <paramref name="name"/>'s <paramref name="source"/> for <paramref name="arch"/>, from the cache or compiled;
    /// <paramref name="group"/> &gt; 0: only that compile group's instantiations (-DKERNEL_GROUP, common.cuh); −1: none of them
    /// (the kernels outside every group alone).</summary>
    public static byte[] Cubin(string name, string source, string arch, int group = 0)
    {
        var options = group != 0 ? [.. Options(arch), $"-DKERNEL_GROUP={group}"] : Options(arch);
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{source}\n--\n{string.Join(' ', options)}\n--\nnvrtc {CudaRuntime.NvrtcVersion} driver {CudaRuntime.DriverVersion}")))[..32];
        var path = Path.Combine(CacheFolder, $"{Path.GetFileNameWithoutExtension(name)}-{arch}-{key}.cubin");
        string what = group > 0 ? $"{name} (group {group})" : group < 0 ? $"{name} (shared kernels)" : name;
        return Cached(path, () => Compile(name, source, options), Backend.Settings.CudaCompileLog, $"{what} for {arch}");
    }

    /// <summary>The cubin cached at <paramref name="path"/> when its hash checks, else <paramref name="compile"/>'s, written
    /// there for the next process (a folder that cannot be written only loses the cache). A compile is announced to
    /// <paramref name="log"/> (what, where it will be cached) and so is its end, with the seconds it took.</summary>
    internal static byte[] Cached(string path, Func<byte[]> compile, Action<string>? log = null, string? what = null)
    {
        if (ReadCached(path) is { } cached) return cached;
        what ??= Path.GetFileName(path);
        log?.Invoke($"compiling CUDA kernels {what}: first use, cached under {Path.GetDirectoryName(Path.GetFullPath(path))} ...");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var cubin = compile();
        log?.Invoke($"compiled CUDA kernels {what} in {clock.Elapsed.TotalSeconds:F1} s");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            IO.AtomicFile.Write(path, s => { s.Write(SHA256.HashData(cubin)); s.Write(cubin); });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // the cache is an optimisation
        return cubin;
    }

    /// <summary>The cubin of a cache file (SHA-256 of the cubin, then the cubin), or null when the file is missing,
    /// unreadable, too short or its hash does not match (torn, corrupted, or written by an older version without one).</summary>
    internal static byte[]? ReadCached(string path)
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(path)) return null;
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        const int h = SHA256.HashSizeInBytes;
        if (bytes.Length <= h || !SHA256.HashData(bytes.AsSpan(h)).AsSpan().SequenceEqual(bytes.AsSpan(0, h))) return null;
        return bytes[h..];
    }

    public static byte[] Compile(string name, string source, string[] options)
    {
        nint prog;
        var src = Encoding.UTF8.GetBytes(source + "\0");
        var nm = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* s = src, n = nm)
            Nvrtc.Check(Nvrtc.nvrtcCreateProgram(&prog, s, n, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var bytes = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = bytes.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            int result;
            try
            {
                var ptrs = stackalloc byte*[bytes.Length];
                for (int i = 0; i < bytes.Length; i++) ptrs[i] = (byte*)handles[i].AddrOfPinnedObject();
                result = Nvrtc.nvrtcCompileProgram(prog, bytes.Length, ptrs);
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            if (result != 0) throw new CudaCompileException(name, string.Join(' ', options), Log(prog));
            nuint size;
            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(prog, &size), "nvrtcGetCUBINSize");
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(prog, c), "nvrtcGetCUBIN");
            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(&prog);
        }
    }

    private static string Log(nint prog)
    {
        nuint size;
        if (Nvrtc.nvrtcGetProgramLogSize(prog, &size) != 0 || size == 0) return "(no log)";
        var log = new byte[(int)size];
        fixed (byte* l = log) Nvrtc.nvrtcGetProgramLog(prog, l);
        return Encoding.UTF8.GetString(log).TrimEnd('\0', '\n');
    }
}
