using Mamba4.IO;

namespace Mamba4.Training;

/// <summary>The output folder of a training run, checked and prepared before any training time is spent.</summary>
public static class RunFolder
{
    /// <summary>
    /// Prepares <paramref name="outDir"/> for a run whose checkpoints live in <paramref name="checkpointDirs"/> (default:
    /// <paramref name="outDir"/> itself; runs of several models keep one per sub-folder). Without
    /// <paramref name="resume"/> an existing checkpoint is an error (it is never overwritten); with it, no checkpoint at
    /// all is an error (not a silent fresh start) naming the folder and the file expected. Then creates the folder,
    /// checks that it can be written, and removes the temporary files an interrupted write left there
    /// (<see cref="AtomicFile.RemoveStale"/>), reporting each through <paramref name="log"/>.
    /// </summary>
    /// <exception cref="IOException">Each of the cases above, one line.</exception>
    public static void Prepare(string outDir, bool resume, Action<string> log, params string[] checkpointDirs)
    {
        var checkpoints = (checkpointDirs.Length == 0 ? [outDir] : checkpointDirs).Select(d => Path.Combine(d, Checkpoint.FileName)).ToList();
        var existing = checkpoints.FirstOrDefault(File.Exists);
        if (!resume && existing is not null)
            throw new IOException($"{Path.GetDirectoryName(existing)} already holds a checkpoint; pass --resume to continue it, or choose another --out");
        if (resume && existing is null)
            throw new IOException($"--resume: {outDir} holds no checkpoint to continue (expected {string.Join(" or ", checkpoints)})");
        try
        {
            Directory.CreateDirectory(outDir);
            var probe = Path.Combine(outDir, ".write-test");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output folder {outDir} cannot be written: {e.Message}", e);
        }
        foreach (var path in AtomicFile.RemoveStale(outDir))
            log($"removed stale temporary file {path} (left by an interrupted write)");
    }
}
