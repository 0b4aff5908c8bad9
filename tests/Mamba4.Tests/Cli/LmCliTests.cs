using System.Text.Json.Nodes;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Text;

namespace Mamba4.Tests;

public class LmCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-lm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("mamba", "mamba1")]
    [InlineData("mamba", "mamba2")]
    [InlineData("transformer", null)]
    public void TrainEvalAndGenerateFromText(string model, string? mixer)
    {
        var data = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(data, LanguageModeling.SyntheticCorpus(sentences: 800));
        var outDir = Path.Combine(_dir, model);
        string[] mixerArgs = mixer is null ? [] : ["--mixer", mixer];
        var (code, stdout, stderr) = CliTests.Run(["lm", "train", "--data", data, "--model", model, .. mixerArgs, "--size", "tiny", "--steps", "60",
            "--seq-len", "32", "--batch", "8", "--eval-every", "30", "--sample-every", "60", "--out", outDir, "--json"]);
        Assert.True(code == 0, stderr);
        // The saved config names the mixer, so eval and generate below rebuild the same model.
        var modelType = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "model", "config.json")))!["model_type"]!.GetValue<string>();
        Assert.Equal(mixer switch { "mamba1" => "mamba", "mamba2" => "mamba2", _ => "gpt" }, modelType);
        var result = JsonNode.Parse(stdout.Trim().Split('\n')[^1])!.AsObject();
        double val = result["val_loss"]!.GetValue<double>();
        Assert.True(val < Math.Log(CharTokenizer.FromText(File.ReadAllText(data)).VocabSize) * 0.8, $"validation loss {val} did not fall well below uniform");
        Assert.Contains("--- sample at step 60 ---", stderr);
        Assert.Contains("<svg", File.ReadAllText(Path.Combine(outDir, "report.html")));
        // peak tensor memory covers at least the fp32 weights
        Assert.True(result["peak_mb"]!.GetValue<double>() * 1e6 >= 4.0 * result["parameters"]!.GetValue<long>(), result.ToJsonString());

        var (ecode, eout, eerr) = CliTests.Run("lm", "eval", "--model", Path.Combine(outDir, "model"), "--data", data, "--seq-len", "32", "--json");
        Assert.True(ecode == 0, eerr);
        var ev = JsonNode.Parse(eout.Trim().Split('\n')[^1])!.AsObject();
        Assert.Equal(val, ev["val_loss"]!.GetValue<double>(), 0.05);
        Assert.InRange(ev["bits_per_byte"]!.GetValue<double>(), 0, 8);

        var (gcode, gout, gerr) = CliTests.Run("generate", "--model", Path.Combine(outDir, "model"), "--prompt", "The cat", "--max-new-tokens", "20", "--seed", "1");
        Assert.True(gcode == 0, gerr);
        Assert.StartsWith("The cat", gout);
        Assert.True(gout.TrimEnd('\n').Length >= "The cat".Length + 20);

        // --tokenizer: the same weights in a folder without a tokenizer, the tokenizer given on its own → the same text
        var bare = Path.Combine(_dir, model + "-bare");
        Directory.CreateDirectory(bare);
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(outDir, "model", f), Path.Combine(bare, f));
        var (ncode, _, nerr) = CliTests.Run("generate", "--model", bare, "--prompt", "The cat", "--max-new-tokens", "20", "--seed", "1");
        Assert.NotEqual(0, ncode);
        Assert.Contains("pass --tokenizer", nerr);
        var (tcode, tout, terr) = CliTests.Run("generate", "--model", bare, "--tokenizer", Path.Combine(outDir, "model", "tokenizer.json"),
            "--prompt", "The cat", "--max-new-tokens", "20", "--seed", "1");
        Assert.True(tcode == 0, terr);
        Assert.Equal(gout, tout);
    }

    /// <summary>--recompute changes memory and time, not the numbers: the same validation loss as without it, bit for bit;
    /// run.json records it; a checkpoint written without it resumes with it (the run's settings otherwise must match).</summary>
    [Fact]
    public void RecomputeTrainsTheSameModelAndResumesEitherWay()
    {
        var data = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(data, LanguageModeling.SyntheticCorpus(sentences: 300));
        double Train(string name, long steps, params string[] extra)
        {
            var (code, stdout, stderr) = CliTests.Run(["lm", "train", "--data", data, "--size", "tiny", "--steps", steps.ToString(), "--seq-len", "32",
                "--batch", "4", "--eval-every", "10", "--checkpoint-every", "10", "--sample-every", "0", "--out", Path.Combine(_dir, name), "--json", .. extra]);
            Assert.True(code == 0, stderr);
            return JsonNode.Parse(stdout.Trim().Split('\n')[^1])!["val_loss"]!.GetValue<double>();
        }
        double kept = Train("kept", 20), recomputed = Train("recomputed", 20, "--recompute");
        Assert.Equal(kept, recomputed);
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "recomputed", "run.json")))!["recompute"]!.GetValue<bool>());
        Assert.Equal(kept, Train("kept", 20, "--recompute", "--resume"));   // its checkpoint (written without) is taken
    }

    [Fact]
    public void BadLmArgumentsFailClearly()
    {
        var (code, _, err) = CliTests.Run("lm", "train", "--data", Path.Combine(_dir, "missing.txt"));
        Assert.NotEqual(0, code);
        Assert.Contains("missing.txt not found", err);
        (code, _, err) = CliTests.Run("lm", "train", "--model", "rnn", "--out", _dir);
        Assert.NotEqual(0, code);
        Assert.Contains("--model must be mamba or transformer", err);
        (code, _, err) = CliTests.Run("lm", "train", "--mixer", "mamba3", "--out", _dir);
        Assert.Equal("error: --mixer must be mamba1 or mamba2, got 'mamba3'", err.Trim());
        (code, _, err) = CliTests.Run("lm", "train", "--mixer", "mamba2", "--head-dim", "48", "--size", "tiny", "--steps", "1", "--out", Path.Combine(_dir, "h"));
        Assert.Equal(1, code);
        Assert.Equal("error: --head-dim must divide the mixer's width expand · d_model = 128, got 48", err.Trim());
        (code, _, err) = CliTests.Run("lm", "train", "--model", "transformer", "--recompute", "--out", _dir);
        Assert.Equal("error: --recompute applies to --model mamba --mixer mamba1 only (the layers that rerun their inner ops)", err.Trim());
    }
}
