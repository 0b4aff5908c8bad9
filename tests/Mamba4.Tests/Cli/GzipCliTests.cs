using System.IO.Compression;
using Mamba4.Data.Recommendation;
using static Mamba4.Tests.CliTests;

namespace Mamba4.Tests;

/// <summary>`mamba4` commands given gzip data files: the same results as the plain file, and one-line errors.</summary>
public sealed class GzipCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-gzcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A small synthetic log as `user item` pairs, plain and gzip-compressed.</summary>
    private (string Plain, string Gz) TinyPairs()
    {
        var log = SyntheticRecData.Generate(new SyntheticRecOptions { Users = 80, Items = 30, MinLength = 6, MaxLength = 12, Seed = 4 });
        var plain = Path.Combine(_dir, "tiny.txt");
        File.WriteAllLines(plain, Enumerable.Range(0, log.Count).Select(i => $"{log.UserTokens[log.Users[i]]} {log.ItemTokens[log.Items[i]]}"));
        var gz = plain + ".gz";
        using (var input = File.OpenRead(plain))
        using (var output = new GZipStream(File.Create(gz), CompressionLevel.Optimal))
            input.CopyTo(output);
        return (plain, gz);
    }

    [Fact]
    public void RecTrainOnAGzipGivesTheMetricsOfThePlainFile()
    {
        var (plain, gz) = TinyPairs();
        string[] tiny = ["--format", "pairs", "--hidden", "8", "--d-state", "4", "--batch", "256", "--max-len", "8", "--epochs", "1", "--json"];
        var a = Run(["rec", "train", "--data", plain, "--out", Path.Combine(_dir, "plain"), .. tiny]);
        var b = Run(["rec", "train", "--data", gz, "--out", Path.Combine(_dir, "gz"), .. tiny]);
        Assert.True(a.ExitCode == 0, a.StdErr);
        Assert.True(b.ExitCode == 0, b.StdErr);
        Assert.Contains("users 80", b.StdErr);
        var (ra, rb) = (LastJson(a.StdOut), LastJson(b.StdOut));
        foreach (var k in new[] { "hit@10", "ndcg@10", "mrr@10" })
            Assert.Equal(ra[k]!.GetValue<double>(), rb[k]!.GetValue<double>());
    }

    [Fact]
    public void ATruncatedGzipIsOneLineNamingTheFile()
    {
        var (_, gz) = TinyPairs();
        var bytes = File.ReadAllBytes(gz);
        var cut = Path.Combine(_dir, "cut.gz");
        File.WriteAllBytes(cut, bytes[..(bytes.Length - 6)]);
        var (code, _, stderr) = Run("rec", "train", "--data", cut, "--format", "pairs", "--epochs", "1", "--out", Path.Combine(_dir, "cut"));
        Assert.Equal(1, code);
        var line = Assert.Single(stderr.Trim().Split('\n'));
        Assert.StartsWith($"error: {cut}:", line);
        Assert.Contains("corrupt or truncated gzip data", line);
    }
}
