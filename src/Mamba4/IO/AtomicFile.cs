using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Mamba4.IO;

/// <summary>
/// Replacing a file atomically: the new content goes to a temporary file beside it, is flushed, and is renamed over
/// it, so a reader (or a crash) sees the old file or the new one, never half of one. Every temporary file or folder
/// Mamba4 writes is named <c>.&lt;name&gt;.&lt;32 hex digits&gt;.tmp</c> (<see cref="TempPath"/>): one left behind by a
/// process killed mid-write (kill -9, power loss — no cleanup runs then) is recognised by the next run in that
/// folder and removed (<see cref="RemoveStale"/>) without touching anything else.
/// </summary>
public static partial class AtomicFile
{
    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TempName();

    /// <summary>A new temporary path beside <paramref name="path"/>: <c>&lt;dir&gt;/.&lt;name&gt;.&lt;guid&gt;.tmp</c>.</summary>
    public static string TempPath(string path)
    {
        var full = Path.GetFullPath(path);
        return Path.Combine(Path.GetDirectoryName(full) ?? ".", $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>True for a file or folder name that <see cref="TempPath"/> makes.</summary>
    public static bool IsTempName(string name) => TempName().IsMatch(name);

    /// <summary>
    /// Writes <paramref name="path"/> through <paramref name="write"/> into a temporary file, then renames it over the
    /// target. <paramref name="durable"/>: the data and the rename are flushed to the disk (fsync) before returning.
    /// A failed write removes its temporary file and leaves the old one untouched.
    /// </summary>
    public static void Write(string path, Action<Stream> write, bool durable = false)
    {
        var full = Path.GetFullPath(path);
        var temp = TempPath(full);
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: durable);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        if (durable) SyncDirectory(Path.GetDirectoryName(full) ?? ".");
    }

    /// <summary>UTF-8 text (no byte-order mark), replaced atomically.</summary>
    public static void WriteAllText(string path, string text) => Write(path, s =>
    {
        using var w = new StreamWriter(s, new UTF8Encoding(false), leaveOpen: true);
        w.Write(text);
    });

    /// <summary>Lines, each ended by "\n", replaced atomically.</summary>
    public static void WriteAllLines(string path, IEnumerable<string> lines) => Write(path, s =>
    {
        using var w = new StreamWriter(s, new UTF8Encoding(false), leaveOpen: true) { NewLine = "\n" };
        foreach (var line in lines) w.WriteLine(line);
    });

    /// <summary>
    /// Removes the temporary files and folders of <see cref="TempPath"/>'s naming in <paramref name="directory"/> and its
    /// sub-folders down to <paramref name="depth"/> levels (a run writes into &lt;out&gt;/&lt;run&gt;/model), never following
    /// links. Anything else is left alone. Returns what was removed. Call it only where no other process is writing.
    /// </summary>
    public static IReadOnlyList<string> RemoveStale(string directory, int depth = 2)
    {
        var removed = new List<string>();
        if (Directory.Exists(directory)) Sweep(new DirectoryInfo(directory), depth, removed);
        return removed;
    }

    private static void Sweep(DirectoryInfo dir, int depth, List<string> removed)
    {
        foreach (var entry in dir.EnumerateFileSystemInfos())
        {
            bool link = entry.Attributes.HasFlag(FileAttributes.ReparsePoint);
            if (IsTempName(entry.Name))
            {
                if (entry is DirectoryInfo d && !link) d.Delete(recursive: true);
                else entry.Delete();
                removed.Add(entry.FullName);
            }
            else if (entry is DirectoryInfo sub && !link && depth > 0) Sweep(sub, depth - 1, removed);
        }
    }

    /// <summary>Makes a rename durable (POSIX: fsync the directory). Best effort: a platform without it
    /// still has a complete file, flushed before the rename.</summary>
    private static void SyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        try
        {
            int fd = open(dir, 0 /* O_RDONLY */);
            if (fd < 0) return;
            fsync(fd);
            close(fd);
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
