using System.Diagnostics;
using Mamba4.IO;

namespace Mamba4.Tests;

/// <summary>The mamba4 command-line tool, run as a separate process.</summary>
public class CliTests
{
    internal static (int ExitCode, string StdOut, string StdErr) Run(params string[] args) => RunWith(null, args);

    /// <summary>As <see cref="Run"/> with extra environment variables for the process.</summary>
    internal static (int ExitCode, string StdOut, string StdErr) RunWith(IReadOnlyDictionary<string, string>? environment, params string[] args) =>
        Start(environment, null, args);

    /// <summary>As <see cref="Run"/> with <paramref name="input"/> written to the process's standard input, which is then closed.</summary>
    internal static (int ExitCode, string StdOut, string StdErr) RunWithInput(string input, params string[] args) => Start(null, input, args);

    private static (int ExitCode, string StdOut, string StdErr) Start(IReadOnlyDictionary<string, string>? environment, string? input, string[] args)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "Mamba4.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = input is not null, UseShellExecute = false };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        psi.ArgumentList.Add(cli);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("mamba4 " + string.Join(' ', args)); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The last line of a command's standard output as a JSON object (the commands' --json result).</summary>
    internal static System.Text.Json.Nodes.JsonObject LastJson(string stdout) => System.Text.Json.Nodes.JsonNode.Parse(stdout.Trim().Split('\n')[^1])!.AsObject();

    [Fact]
    public void InfoPrintsVersionCpuAndBlas()
    {
        var (code, stdout, _) = Run("info");
        Assert.Equal(0, code);
        Assert.Contains("mamba4 ", stdout);
        Assert.Contains("simd width:", stdout);
        Assert.Contains("blas:", stdout);
    }

    /// <summary>`mamba4 generate --greedy` reproduces transformers' greedy ids (hf-mamba: ../shared/fixtures; mamba2: tests/fixtures).</summary>
    [Theory]
    [InlineData("hf-mamba")]
    [InlineData("mamba2")]
    public void GenerateReproducesTheHfGreedyOutput(string fixture)
    {
        var dir = fixture == "hf-mamba" ? Fixtures.Path_(fixture) : Fixtures.Repo(fixture);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        var (code, stdout, stderr) = Run("generate", "--model", dir, "--prompt-ids", string.Join(",", prompt),
            "--max-new-tokens", (expected.Length - prompt.Length).ToString(), "--greedy");
        Assert.True(code == 0, stderr);
        var last = stdout.Trim().Split('\n')[^1];
        Assert.Equal(string.Join(",", expected), last);
    }

    [Fact]
    public void InfoShowsAMamba2Model()
    {
        var (code, stdout, stderr) = Run("info", "--model", Fixtures.Repo("mamba2"));
        Assert.True(code == 0, stderr);
        Assert.Contains("\"model_type\": \"mamba2\"", stdout);
        Assert.Contains("\"n_groups\": 2", stdout);
        // 2 layers of in_proj 32·(64 + 128 + 8), conv 128·4 + 128, dt_bias/A_log/D 3·8, norm 64, out_proj 64·32;
        // embeddings and the untied head 2·96·32; the blocks' norms 2·32 and norm_f 32.
        long perLayer = 32 * 200 + 128 * 5 + 24 + 64 + 64 * 32 + 32;
        Assert.Contains($"parameters: {2 * perLayer + 2 * 96 * 32 + 32:N0}", stdout);
    }

    [Fact]
    public void GenerateNamesTheMissingDirectory()
    {
        var (code, _, stderr) = Run("generate", "--model", "/nonexistent/model", "--prompt-ids", "1,2");
        Assert.NotEqual(0, code);
        Assert.Contains("/nonexistent/model", stderr);
    }

    [Fact]
    public void GenerateWithATemperatureBelowTheFloorIsGreedyAndABadPenaltyIsNamed()
    {
        // Issue 16: --temperature 1e-40 --top-p 0.5 hung (1/T overflowed float, the weights turned NaN, the nucleus search never ended).
        var dir = Fixtures.Path_("hf-mamba");
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        var (code, stdout, stderr) = Run("generate", "--model", dir, "--prompt-ids", string.Join(",", prompt),
            "--max-new-tokens", (expected.Length - prompt.Length).ToString(), "--temperature", "1e-40", "--top-p", "0.5");
        Assert.True(code == 0, stderr);
        Assert.Equal(string.Join(",", expected), stdout.Trim().Split('\n')[^1]);

        (code, _, stderr) = Run("generate", "--model", dir, "--prompt-ids", "1,2", "--repetition-penalty", "1e-40");
        Assert.Equal(1, code);
        Assert.Equal("error: --repetition-penalty must be in [0.1, 10] (1 = off), got 1E-40", stderr.Trim());
    }

    [Fact]
    public void GenerateFromAModelWithNaNWeightsIsAOneLineError()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-nan-lm-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var tokenizer = Mamba4.Text.CharTokenizer.FromText("abcdefgh");
            using (var model = new Mamba4.Models.MambaLM(new Mamba4.Models.MambaConfig { DModel = 8, NLayer = 1, DState = 4, VocabSize = tokenizer.VocabSize }, seed: 1))
            {
                model.Backbone.Embeddings.Weight.AsSpan<float>().Fill(float.NaN);
                Mamba4.Tasks.LanguageModeling.LanguageModelFiles.Save(model, tokenizer, dir);
            }
            var (code, _, stderr) = Run("generate", "--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "3");
            Assert.Equal(1, code);
            var line = Assert.Single(stderr.Trim().Split('\n'));
            Assert.StartsWith("error: ", line);
            Assert.Contains("non-finite", line);
            Assert.Contains(dir, line);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
