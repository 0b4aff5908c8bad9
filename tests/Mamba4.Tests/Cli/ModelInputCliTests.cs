using Mamba4.IO;
using Mamba4.Training;

namespace Mamba4.Tests;

/// <summary>
/// The tool with bad model directories and options: one line on standard error and exit code 1, never a stack
/// trace (exit 134); --resume without a checkpoint; temporary files left by a killed write removed at the next run.
/// </summary>
public class ModelInputCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-input-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The HF fixture's weights beside <paramref name="config"/> (null: the fixture's own config.json).</summary>
    private string ModelDir(string? config = null)
    {
        var dir = Path.Combine(_dir, "model");
        Directory.CreateDirectory(dir);
        var src = Fixtures.Path_("hf-mamba");
        File.Copy(Path.Combine(src, "model.safetensors"), Path.Combine(dir, "model.safetensors"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "config.json"), config ?? File.ReadAllText(Path.Combine(src, "config.json")));
        return dir;
    }

    /// <summary>Exit code 1 and exactly one line on standard error, which contains <paramref name="expected"/>.</summary>
    private static void FailsWithOneLine((int ExitCode, string StdOut, string StdErr) result, string expected)
    {
        Assert.True(result.ExitCode == 1, $"exit code {result.ExitCode}: {result.StdErr}");
        Assert.Single(result.StdErr.Trim().Split('\n'));
        Assert.Contains(expected, result.StdErr);
    }

    [Theory]
    [InlineData("generate", "", "empty file")]
    [InlineData("generate", "{\"hidden_size\": 32,", "not valid JSON at line 1")]
    [InlineData("generate", "{\"intermediate_size\": 67108864}", "field 'intermediate_size': expected a positive integer ≤ 262144, got 67108864")]
    [InlineData("serve", "", "empty file")]
    [InlineData("info", "{\"num_hidden_layers\": 1e7}", "field 'num_hidden_layers': expected a positive integer ≤ 1024, got 1e7")]
    public void ABadConfigJsonFailsWithOneLineNamingTheFile(string command, string config, string expected)
    {
        var dir = ModelDir(config);
        string[] args = command switch
        {
            "generate" => ["generate", "--model", dir, "--prompt-ids", "1,2"],
            "serve" => ["serve", "--model", dir, "--port", "0"],
            _ => ["info", "--model", dir],
        };
        FailsWithOneLine(CliTests.Run(args), $"error: {Path.Combine(dir, "config.json")}: {expected}");
    }

    [Theory]
    [InlineData("--max-new-tokens must be positive, got -1", "--max-new-tokens", "-1")]
    [InlineData("--max-new-tokens must be positive, got 0", "--max-new-tokens", "0")]
    [InlineData("--top-p must be in (0, 1], got 0", "--top-p", "0")]
    [InlineData("--temperature must be in [0, 10] (below 1E-05 it takes the most likely token, as 0 does), got -1", "--temperature", "-1")]
    [InlineData("token id 500 (--prompt-ids / --eos-token-id) is outside the model's vocabulary [0, 96)", "--eos-token-id", "500")]
    public void GenerateRefusesBadOptions(string expected, params string[] args) =>
        FailsWithOneLine(CliTests.Run(["generate", "--model", Fixtures.Path_("hf-mamba"), "--prompt-ids", "1,2", .. args]), expected);

    [Fact]
    public void NonFiniteWeightsFailGenerateUnlessAllowed()
    {
        var dir = ModelDir();
        var path = Path.Combine(dir, "model.safetensors");
        var weights = SafetensorsFile.LoadAll(path);
        weights["backbone.layers.0.mixer.dt_proj.bias"].AsSpan<float>()[9] = float.PositiveInfinity;
        Safetensors.Save(path, weights);
        string[] args = ["generate", "--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "2", "--greedy"];
        FailsWithOneLine(CliTests.Run(args), $"error: {path}: tensor 'backbone.layers.0.mixer.dt_proj.bias' holds +Inf at index 9");
        // Allowed, the model loads with a warning; its logits are then NaN, which generation refuses in one line (no NaN tokens, no hang).
        var (code, stdout, stderr) = CliTests.Run([.. args, "--allow-nonfinite"]);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith($"warning: {path}: tensor 'backbone.layers.0.mixer.dt_proj.bias' holds +Inf at index 9", lines[0]);
        Assert.StartsWith($"error: {dir}: generation stopped after 0 tokens: the model produced a non-finite logit", lines[1]);
    }

    [Theory]
    [InlineData("train")]
    [InlineData("lm train")]
    [InlineData("rec train")]
    [InlineData("rec compare")]
    [InlineData("forecast train")]
    public void ResumeWithoutACheckpointIsAnError(string command)
    {
        // Before: a silent fresh start.
        var outDir = Path.Combine(_dir, "run");
        string where = command switch
        {
            "train" => " in selective or time-invariant",
            "rec compare" => " in sasrec",
            _ => "",
        };
        string[] extra = command == "rec compare" ? ["--models", "sasrec"] : [];
        FailsWithOneLine(CliTests.Run([.. command.Split(' '), "--out", outDir, "--resume", .. extra]),
            $"error: --resume: {outDir} holds no {Checkpoint.FileName}{where} to continue (start without --resume, or name the folder of the interrupted run with --out)");
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void StaleTemporaryFilesAreRemovedAtTheNextRunAndNothingElse()
    {
        var outDir = Path.Combine(_dir, "run");
        string Guid32() => Guid.NewGuid().ToString("N");
        string[] stale =
        [
            Path.Combine(outDir, "selective", $".checkpoint.safetensors.{Guid32()}.tmp"),   // kill -9 during a checkpoint write
            Path.Combine(outDir, "selective", "model", $".model.safetensors.{Guid32()}.tmp"),
            Path.Combine(outDir, $".report.html.{Guid32()}.tmp"),
        ];
        var staleDir = Path.Combine(outDir, $".model.{Guid32()}.tmp");                          // a recommender's model folder being written
        string[] unrelated =
        [
            Path.Combine(outDir, "notes.tmp"),
            Path.Combine(outDir, ".checkpoint.safetensors.tmp"),
            Path.Combine(outDir, "selective", $"keep.{Guid32()}.tmp"),
            Path.Combine(outDir, $".report.html.{Guid32()[..31]}.tmp"),
        ];
        foreach (var f in stale.Concat(unrelated).Append(Path.Combine(staleDir, "model.safetensors")))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            File.WriteAllText(f, "partial");
        }
        var (code, _, stderr) = CliTests.Run("train", "--out", outDir, "--d-model", "8", "--layers", "1", "--d-state", "2", "--batch", "2",
            "--length", "8", "--steps", "2", "--eval-every", "2", "--ablation", "false");
        Assert.True(code == 0, stderr);
        foreach (var f in stale.Append(staleDir))
        {
            Assert.False(Path.Exists(f), f);
            Assert.Contains($"removed stale temporary file {f}", stderr);
        }
        foreach (var f in unrelated) Assert.True(File.Exists(f), f);
        // The run's own writes leave no temporary file behind.
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(outDir, "*", SearchOption.AllDirectories), p => AtomicFile.IsTempName(Path.GetFileName(p)));
    }
}
