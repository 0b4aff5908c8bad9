using Mamba4.IO;

namespace Mamba4.Tests;

/// <summary>Atomic replacement through one temporary-file naming, and the sweep that removes what a killed write left.</summary>
public class AtomicFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-atomic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFailedWriteKeepsTheOldFileAndLeavesNoTemporary()
    {
        var path = Path.Combine(_dir, "config.json");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.WriteByte(1);
            throw new InvalidOperationException("disk full");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_dir));
        Assert.True(AtomicFile.IsTempName(Path.GetFileName(AtomicFile.TempPath(path))));
    }

    [Fact]
    public void RemoveStaleTakesOnlyOurNamingDownToTwoLevelsAndFollowsNoLink()
    {
        string Temp(string dir, string name) => Path.Combine(dir, $".{name}.{Guid.NewGuid():N}.tmp");
        var deep = Path.Combine(_dir, "a", "b", "c");
        var outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(deep);
        Directory.CreateDirectory(outside);
        var run = Path.Combine(_dir, "a");
        string[] stale = [Temp(run, "checkpoint.safetensors"), Temp(Path.Combine(run, "b"), "metrics.jsonl"), Temp(Path.Combine(run, "b", "c"), "model.safetensors")];
        string[] kept = [Temp(Path.Combine(deep, "d"), "too-deep"), Temp(outside, "through-a-link"), Path.Combine(run, "x.tmp"), Path.Combine(run, ".x.tmp")];
        Directory.CreateDirectory(Path.Combine(deep, "d"));
        foreach (var f in stale.Concat(kept)) File.WriteAllText(f, "");
        Directory.CreateSymbolicLink(Path.Combine(run, "link"), outside);

        Assert.Equal(stale.Order(), AtomicFile.RemoveStale(run).Order());
        Assert.All(stale, f => Assert.False(File.Exists(f)));
        Assert.All(kept, f => Assert.True(File.Exists(f)));
    }
}
