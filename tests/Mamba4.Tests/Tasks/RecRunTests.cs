using Mamba4.Data.Recommendation;
using Mamba4.Tasks;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Tests;

/// <summary>The library side of `mamba4 rec train` / `compare`: settings and the resume guard are checked before any training or writing.</summary>
public class RecRunTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-recrun-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>60 users of 6-10 items over 20 items, as `user item` pairs.</summary>
    private RecDataSettings TinyData()
    {
        var path = Path.Combine(_dir, "tiny.txt");
        var log = SyntheticRecData.Generate(new SyntheticRecOptions { Users = 60, Items = 20, MinLength = 6, MaxLength = 10, Seed = 2 });
        File.WriteAllLines(path, Enumerable.Range(0, log.Count).Select(i => $"{log.UserTokens[log.Users[i]]} {log.ItemTokens[log.Items[i]]}"));
        return new RecDataSettings { Path = path, Format = "pairs" };
    }

    private static RecTrainSettings Tiny(RecDataSettings data, string output) => new()
    {
        Data = data, OutputDirectory = output,
        Model = new RecModelOptions { Hidden = 8, DState = 4, MaxLen = 8 },
        Training = new RecTrainOptions { Epochs = 1, Batch = 64 },
    };

    [Fact]
    public void BadSettingsAreRefusedBeforeTheOutputFolderIsCreated()
    {
        var output = Path.Combine(_dir, "never");
        var s = Tiny(new RecDataSettings(), output);
        var cases = new (string Expected, RecTrainSettings Settings)[]
        {
            ("--patience must be positive, got 0", s with { Training = s.Training with { Patience = 0 } }),
            ("--lr must be positive, got Infinity", s with { Training = s.Training with { LearningRate = float.Parse("1e39", System.Globalization.CultureInfo.InvariantCulture) } }),   // finite as text, infinite as a float
            ("weight decay must be ≥ 0, got -1", s with { Training = s.Training with { WeightDecay = -1 } }),
            ("gradient clipping norm must be ≥ 0, got NaN", s with { Training = s.Training with { ClipNorm = double.NaN } }),
            ("--hidden must be a multiple of SASRec's 2 heads, got 9", s with { Model = s.Model with { Kind = "sasrec", Hidden = 9 } }),
            ("--hidden must be a multiple of BERT4Rec's 2 heads, got 9", s with { Model = s.Model with { Kind = "bert4rec", Hidden = 9 } }),
            ("unknown model 'caser'", s with { Model = s.Model with { Kind = "caser" } }),
        };
        foreach (var (expected, settings) in cases)
        {
            using var stop = new StopSignal();
            var e = Assert.Throws<ArgumentException>(() => RecTrainingRun.Run(settings, stop, TextWriter.Null));
            Assert.Contains(expected, e.Message);
            Assert.False(Directory.Exists(output), expected);
        }
    }

    [Theory]
    [InlineData(0, "--max-len must be a positive integer ≤ 1048576, got 0")]
    [InlineData(2000000000, "--max-len must be a positive integer ≤ 1048576, got 2000000000")]
    public void EvalRefusesAMaxLenOutOfRangeBeforeLoadingAnything(int maxLen, string expected)
    {
        var s = new RecEvalSettings { Checkpoint = "/nonexistent", MaxLen = maxLen };
        Assert.Equal(expected, Assert.Throws<ArgumentException>(s.Validate).Message);
    }

    [Fact]
    public void ResumeWithoutACheckpointIsRefusedAndNothingIsTrained()
    {
        var output = Path.Combine(_dir, "empty");
        using var stop = new StopSignal();
        var e = Assert.Throws<IOException>(() => RecTrainingRun.Run(Tiny(TinyData(), output) with { Resume = true }, stop, TextWriter.Null));
        Assert.Contains($"--resume: {output} holds no checkpoint.safetensors", e.Message);
        Assert.False(File.Exists(Path.Combine(output, RunDirectory.MetricsFile)));
    }

    /// <summary>
    /// A checkpoint in the second model's folder stops `compare` without --resume before the first model trains; --resume
    /// with no checkpoint in any model's folder is refused; a bad model name is refused before the data is read.
    /// </summary>
    [Fact]
    public void CompareChecksEveryModelBeforeTrainingAny()
    {
        var root = Path.Combine(_dir, "compare");
        var data = TinyData();
        using var stop = new StopSignal();
        var fresh = new RecCompareSettings { Models = ["mamba4rec", "sasrec"], Shared = Tiny(data, root) };
        var resumed = fresh with { Shared = fresh.Shared with { Resume = true } };

        var none = Assert.Throws<IOException>(() => RecCompareRun.Run(resumed, stop, TextWriter.Null));
        Assert.Contains($"--resume: {root} holds no checkpoint.safetensors in mamba4rec or sasrec", none.Message);

        Assert.False(Directory.Exists(root));   // refused before anything was created
        Directory.CreateDirectory(Path.Combine(root, "sasrec"));
        File.WriteAllText(Path.Combine(root, "sasrec", "checkpoint.safetensors"), "");
        var held = Assert.Throws<IOException>(() => RecCompareRun.Run(fresh, stop, TextWriter.Null));
        Assert.Contains($"{Path.Combine(root, "sasrec")} already holds a checkpoint; pass --resume", held.Message);
        Assert.False(File.Exists(Path.Combine(root, "mamba4rec", RunDirectory.MetricsFile)));

        var log = new StringWriter();
        var bad = Assert.Throws<ArgumentException>(() => RecCompareRun.Run(fresh with { Models = ["mamba4rec", "caser"] }, stop, log));
        Assert.Contains("unknown model 'caser'", bad.Message);
        Assert.Equal("", log.ToString());   // refused before the data was read
    }

    /// <summary>`--attention naive` reaches run.json (with compare: the transformers only; the saved model, whose config.json
    /// has no attention field, is loaded back for the test metrics); `--preset paper` gives Mamba4Rec the paper's configuration.</summary>
    [Fact]
    public void AttentionAndPresetReachTheModelsAndRunJson()
    {
        var root = Path.Combine(_dir, "naive");
        using var stop = new StopSignal();
        var shared = Tiny(TinyData(), root) with { Model = new RecModelOptions { Hidden = 8, MaxLen = 8, Attention = "naive", Preset = "paper" } };
        var result = RecCompareRun.Run(new RecCompareSettings { Models = ["sasrec", "mamba4rec"], Shared = shared }, stop, TextWriter.Null);
        Assert.Equal(2, result.Models.Count);
        var run = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(root, "sasrec", "run.json")))!;
        Assert.Equal("naive", run["attention"]!.GetValue<string>());
        var mamba = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(root, "mamba4rec", "run.json")))!;
        Assert.Null(mamba["attention"]);   // compare leaves it to the transformers
        var model = System.Text.Json.Nodes.JsonNode.Parse(mamba["model_config"]!.GetValue<string>())!;
        Assert.Equal((1, 32, 4, 2, 0.2), (model["num_layers"]!.GetValue<int>(), model["d_state"]!.GetValue<int>(), model["d_conv"]!.GetValue<int>(),
            model["expand"]!.GetValue<int>(), Math.Round(model["dropout_prob"]!.GetValue<double>(), 6)));
        Assert.Contains("--preset", Assert.Throws<ArgumentException>(() => new RecModelOptions { Preset = "recbole" }.Validate()).Message);
    }
}
