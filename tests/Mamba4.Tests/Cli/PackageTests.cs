using System.Diagnostics;
using System.Reflection;

namespace Mamba4.Tests.Cli;

/// <summary>
/// The packages `.ci/run` makes (`dotnet pack Mamba4.slnx` → artifacts/packages): the `mamba4` tool installs from that
/// local feed into a temporary folder and runs. Without the feed the test is skipped with the reason — except under
/// CI (CI=true), where .ci/run packs before testing and a missing feed is a failure.
/// </summary>
public class PackageTests
{
    private static string Version => typeof(Mamba4.Models.MambaLM).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    private static string Feed()
    {
        var feed = Environment.GetEnvironmentVariable("MAMBA4_PACKAGE_FEED") ?? Fixtures.Repo("..", "..", "artifacts", "packages");
        if (File.Exists(Path.Combine(feed, $"Mamba4.Cli.{Version}.nupkg"))) return Path.GetFullPath(feed);
        var why = $"no Mamba4.Cli.{Version}.nupkg in {Path.GetFullPath(feed)}: run `dotnet pack Mamba4.slnx -c Release` first (.ci/run does)";
        if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail(why);
        Assert.Skip(why);
        return "";
    }

    [Fact]
    public void TheToolInstallsFromTheLocalFeedAndRunsInfo()
    {
        var feed = Feed();
        var temp = Directory.CreateTempSubdirectory("mamba4-tool-").FullName;
        try
        {
            // A package folder of its own: the global cache may hold an older build of the same version.
            var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(temp, "packages"), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" };
            var tools = Path.Combine(temp, "tools");
            // The local feed alone: the package must come from there, not from a registry that might hold a same-named one.
            var config = Path.Combine(temp, "nuget.config");
            File.WriteAllText(config, $"""<configuration><packageSources><clear /><add key="local" value="{feed}" /></packageSources></configuration>""");
            var (code, output) = Run("dotnet", ["tool", "install", "Mamba4.Cli", "--version", Version, "--tool-path", tools, "--configfile", config], env);
            Assert.True(code == 0, output);
            (code, output) = Run(Path.Combine(tools, "mamba4"), ["info"], env);
            Assert.True(code == 0, output);
            Assert.StartsWith($"mamba4 {Version}", output);
            Assert.Contains("cpu features:", output);
        }
        finally { Directory.Delete(temp, true); }
    }

    private static (int Code, string Output) Run(string file, string[] args, Dictionary<string, string> env)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env) start.Environment[k] = v;
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); return (-1, $"{file} {string.Join(' ', args)}: no exit after 3 minutes"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
