using System.Globalization;
using Mamba4.IO;
using Mamba4.Tasks.LanguageModeling;
using static Mamba4.Tests.CliTests;

namespace Mamba4.Tests;

/// <summary>
/// --device on every command that trains or runs a model, and `mamba4 info`'s GPU lines. The first tests run
/// everywhere: with CUDA switched off (MAMBA4_DISABLE_CUDA=1 in the child process) every command refuses
/// --device cuda with the reason and a non-zero exit code. <see cref="CudaCliTests"/> runs the commands on a GPU.
/// </summary>
public class DeviceCliTests
{
    private static readonly Dictionary<string, string> NoCuda = new() { ["MAMBA4_DISABLE_CUDA"] = "1" };

    public static TheoryData<string[]> ModelCommands => new()
    {
        new[] { "train", "--steps", "1" },
        new[] { "eval", "--run", "/nonexistent" },
        new[] { "generate", "--model", "/nonexistent", "--prompt-ids", "1" },
        new[] { "lm", "train", "--steps", "1" },
        new[] { "lm", "eval", "--model", "/nonexistent", "--data", "/nonexistent" },
        new[] { "rec", "train" },
        new[] { "rec", "compare" },
        new[] { "rec", "eval", "--checkpoint", "/nonexistent" },
        new[] { "rec", "score", "--checkpoint", "/nonexistent", "--history", "1" },
        new[] { "rec", "recommend", "--checkpoint", "/nonexistent", "--history", "1" },
        new[] { "forecast", "train" },
        new[] { "forecast", "eval", "--run", "/nonexistent" },
        new[] { "forecast", "predict", "--run", "/nonexistent" },
        new[] { "forecast", "compare" },
        new[] { "serve", "--model", "/nonexistent" },
    };

    [Theory]
    [MemberData(nameof(ModelCommands))]
    public void EveryModelCommandRefusesCudaWithTheReasonWhenCudaIsUnavailable(string[] command)
    {
        foreach (var device in new[] { "cuda", "cuda:1" })
        {
            var (code, _, stderr) = CliTests.RunWith(NoCuda, [.. command, "--device", device]);
            Assert.True(code != 0, $"{string.Join(' ', command)} --device {device} exited 0");
            Assert.Contains($"--device {device}: CUDA is not available on this machine: CUDA is disabled by MAMBA4_DISABLE_CUDA", stderr);
            Assert.DoesNotContain("   at ", stderr);   // one line, no stack trace
        }
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    public void AMalformedDeviceIsNamed(string device)
    {
        var (code, _, stderr) = CliTests.Run("generate", "--model", "/nonexistent", "--prompt-ids", "1", "--device", device);
        Assert.NotEqual(0, code);
        Assert.Contains($"device '{device}' is not valid (expected 'cpu', 'cuda' or 'cuda:N')", stderr);
    }

    [Fact]
    public void InfoSaysWhyThereIsNoGpu()
    {
        var (code, stdout, _) = CliTests.RunWith(NoCuda, "info");
        Assert.Equal(0, code);
        Assert.Contains("cuda: unavailable (CUDA is disabled by MAMBA4_DISABLE_CUDA)", stdout);
    }
}

/// <summary>The commands on --device cuda (GPU machine only): each runs to the end, and what has a CPU reference matches it.</summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-cuda-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var r = CliTests.Run(args);
        Assert.True(r.ExitCode == 0, $"mamba4 {string.Join(' ', args)} exited {r.ExitCode}: {r.StdErr}");
        return r;
    }


    [Fact]
    public void InfoListsTheGpu()
    {
        _ = CudaTest.Gpu;
        var (_, stdout, _) = Run("info");
        Assert.Contains("cuda:0: ", stdout);
        Assert.Contains("compute capability ", stdout);
        Assert.Contains("NVRTC ", stdout);
    }

    [Fact]
    public void GenerateOnCudaReproducesTheHfGreedyOutput()
    {
        _ = CudaTest.Gpu;
        var dir = Fixtures.Path_("hf-mamba");
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        var (_, stdout, _) = Run("generate", "--model", dir, "--prompt-ids", string.Join(",", prompt),
            "--max-new-tokens", (expected.Length - prompt.Length).ToString(), "--greedy", "--device", "cuda");
        Assert.Equal(string.Join(",", expected), stdout.Trim().Split('\n')[^1]);
    }

    [Fact]
    public void SyntheticTrainAndEvalOnCuda()
    {
        _ = CudaTest.Gpu;
        var outDir = Path.Combine(_dir, "train");
        var (_, stdout, _) = Run("train", "--out", outDir, "--d-model", "16", "--layers", "1", "--d-state", "4", "--batch", "4", "--length", "12",
            "--steps", "8", "--eval-every", "4", "--checkpoint-every", "4", "--ablation", "false", "--json", "--device", "cuda");
        Assert.NotNull(LastJson(stdout));
        Run("eval", "--run", Path.Combine(outDir, "selective"), "--samples", "16", "--device", "cuda");
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("transformer")]
    public void LmTrainEvalGenerateOnCuda(string model)
    {
        _ = CudaTest.Gpu;
        var data = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(data, LanguageModeling.SyntheticCorpus(sentences: 300));
        var outDir = Path.Combine(_dir, model);
        var (_, stdout, _) = Run("lm", "train", "--data", data, "--model", model, "--size", "tiny", "--steps", "12", "--seq-len", "32", "--batch", "4",
            "--eval-every", "6", "--sample-every", "0", "--out", outDir, "--json", "--device", "cuda");
        double loss = LastJson(stdout)["val_loss"]!.GetValue<double>();
        Assert.True(double.IsFinite(loss), stdout);
        var (_, eout, _) = Run("lm", "eval", "--model", Path.Combine(outDir, "model"), "--data", data, "--seq-len", "32", "--json", "--device", "cuda");
        Assert.True(double.IsFinite(LastJson(eout)["val_loss"]!.GetValue<double>()));
        Run("generate", "--model", Path.Combine(outDir, "model"), "--prompt", "The", "--max-new-tokens", "8", "--device", "cuda");
    }

    [Theory]
    [InlineData("mamba4rec")]
    [InlineData("sasrec")]
    [InlineData("gru4rec")]
    public void RecTrainEvalRecommendOnCuda(string model)
    {
        _ = CudaTest.Gpu;
        var outDir = Path.Combine(_dir, "rec-" + model);
        var (_, stdout, _) = Run("rec", "train", "--model", model, "--hidden", "16", "--d-state", "8", "--batch", "256", "--max-len", "12",
            "--epochs", "1", "--out", outDir, "--json", "--device", "cuda");
        Assert.NotNull(LastJson(stdout));
        var modelDir = Path.Combine(outDir, "model");
        Run("rec", "eval", "--checkpoint", modelDir, "--device", "cuda");
        Run("rec", "recommend", "--checkpoint", modelDir, "--history", "1,2,3", "--ids", "--top", "5", "--device", "cuda");
    }

    [Fact]
    public void RecScoreOnCudaEqualsCpu()
    {
        _ = CudaTest.Gpu;
        var dir = Fixtures.Path_("mamba4rec-2layer");
        float[] Scores(string device) => Run("rec", "score", "--checkpoint", dir, "--history", "5,9,2,7", "--device", device).Out
            .Trim().Split('\n')[^1].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var cpu = Scores("cpu");
        var gpu = Scores("cuda");
        Assert.Equal(cpu.Length, gpu.Length);
        double scale = cpu.Max(Math.Abs);
        for (int i = 0; i < cpu.Length; i++) Assert.True(Math.Abs(cpu[i] - gpu[i]) <= 1e-5 * scale, $"item {i}: cpu {cpu[i]}, gpu {gpu[i]}");
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("transformer")]
    [InlineData("linear")]
    public void ForecastTrainEvalPredictOnCuda(string model)
    {
        _ = CudaTest.Gpu;
        var run = Path.Combine(_dir, "fc-" + model);
        Run("forecast", "train", "--model", model, "--out", run, "--input-len", "24", "--horizon", "12", "--d-model", "16", "--d-ff", "16",
            "--layers", "1", "--d-state", "4", "--epochs", "1", "--json", "--device", "cuda");
        var (_, eout, _) = Run("forecast", "eval", "--run", run, "--json", "--device", "cuda");
        Assert.NotNull(LastJson(eout));
        Run("forecast", "predict", "--run", run, "--out", Path.Combine(_dir, model + ".csv"), "--device", "cuda");
    }
}
