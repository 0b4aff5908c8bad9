namespace Mamba4.Tests;

/// <summary>Locates ../shared (fixtures and data) from the test binary's directory.</summary>
public static class Fixtures
{
    public static string SharedDir
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("MAMBA4_SHARED");
            if (!string.IsNullOrEmpty(env)) return env;
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null)
            {
                var candidate = Path.Combine(dir.FullName, "shared");
                if (Directory.Exists(Path.Combine(candidate, "fixtures"))) return candidate;
                dir = dir.Parent;
            }
            throw new DirectoryNotFoundException("could not find shared/fixtures above " + AppContext.BaseDirectory + " (set MAMBA4_SHARED)");
        }
    }

    public static string Path_(params string[] parts) => Path.Combine([SharedDir, "fixtures", .. parts]);

    /// <summary>A fixture committed in this repository under tests/fixtures (made by scripts/fixtures), found above the test binary.</summary>
    public static string Repo(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (File.Exists(Path.Combine(candidate, "README.md"))) return Path.Combine([candidate, .. parts]);
        }
        throw new DirectoryNotFoundException("could not find tests/fixtures above " + AppContext.BaseDirectory);
    }
}
