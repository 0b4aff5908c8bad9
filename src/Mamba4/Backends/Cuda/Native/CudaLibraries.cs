using System.Runtime.InteropServices;

namespace Mamba4.Backends.Cuda.Native;

/// <summary>
/// Finds and loads the NVIDIA libraries with <see cref="NativeLibrary"/>: first by name (the loader's
/// path), then in the usual CUDA folders ($MAMBA4_CUDA_LIBS, $CUDA_HOME, /usr/local/cuda…). A missing
/// library is not an error here: the caller turns the returned reason into a NotSupportedException.
/// </summary>
internal static class CudaLibraries
{
    private static IEnumerable<string> Folders()
    {
        foreach (var part in Backend.Settings.CudaLibraryFolders)
        {
            yield return part;
            yield return Path.Combine(part, "lib64");
            yield return Path.Combine(part, "targets", "x86_64-linux", "lib");
        }
        yield return "/usr/local/cuda/lib64";
        yield return "/usr/local/cuda/targets/x86_64-linux/lib";
        if (Directory.Exists("/usr/local"))
            foreach (var d in Directory.GetDirectories("/usr/local", "cuda-*").OrderDescending())
            {
                yield return Path.Combine(d, "lib64");
                yield return Path.Combine(d, "targets", "x86_64-linux", "lib");
            }
        yield return "/usr/lib/x86_64-linux-gnu";
        yield return "/usr/local/nvidia/lib64";
    }

    /// <summary>Loads <paramref name="fileName"/> (e.g. libnvrtc.so.13); returns 0 and the places tried when absent.</summary>
    public static nint TryLoad(string fileName, out string tried)
    {
        if (NativeLibrary.TryLoad(fileName, out var handle)) { tried = ""; return handle; }
        var places = new List<string> { fileName };
        foreach (var folder in Folders().Distinct())
        {
            var path = Path.Combine(folder, fileName);
            if (!File.Exists(path)) continue;
            places.Add(path);
            if (NativeLibrary.TryLoad(path, out handle)) { tried = ""; return handle; }
        }
        tried = string.Join(", ", places);
        return 0;
    }

    /// <summary>The folder a loaded library came from (for companions such as libnvrtc-builtins), or null.</summary>
    public static string? FolderOf(string fileName)
    {
        foreach (var folder in Folders().Distinct())
            if (File.Exists(Path.Combine(folder, fileName))) return folder;
        return null;
    }

    public static unsafe void* Export(nint library, string libraryName, params string[] names)
    {
        foreach (var name in names)
            if (NativeLibrary.TryGetExport(library, name, out var p)) return (void*)p;
        throw new NotSupportedException($"{libraryName} has no export {string.Join(" or ", names)} (library too old?)");
    }

    public static unsafe void* OptionalExport(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var p) ? (void*)p : null;

    public static unsafe string Utf8(byte* s) => s == null ? "" : Marshal.PtrToStringUTF8((nint)s) ?? "";
}
