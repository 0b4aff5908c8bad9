using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Training;

namespace Mamba4.Tests;

/// <summary>`mamba4 train` / `mamba4 eval` as a user runs them: results, resume, and bad input.</summary>
public class TrainCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] Tiny = ["--d-model", "16", "--layers", "1", "--d-state", "4", "--batch", "4", "--length", "12", "--eval-every", "4", "--checkpoint-every", "4"];

    private (int Code, string Out, string Err) Train(string outDir, params string[] extra) =>
        CliTests.Run(["train", "--out", outDir, .. Tiny, .. extra]);

    [Fact]
    public void TrainsBothModelsAndPrintsJsonReportAndModel()
    {
        var outDir = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = Train(outDir, "--steps", "6", "--json");
        Assert.True(code == 0, stderr);
        var result = JsonNode.Parse(stdout.Trim().Split('\n')[^1])!.AsObject();
        Assert.Equal("selective-copying", result["task"]!.GetValue<string>());
        Assert.Equal(6, result["steps"]!.GetValue<long>());
        Assert.InRange(result["accuracy"]!.GetValue<double>(), 0, 1);
        Assert.InRange(result["time_invariant_accuracy"]!.GetValue<double>(), 0, 1);
        var html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        Assert.Contains("<svg", html);
        Assert.DoesNotContain("src=\"http", html);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(outDir, "selective", "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));
        // The saved model is an HF-format directory: eval (and generate) load it.
        var (ecode, eout, eerr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "selective"), "--scales", "1,2", "--samples", "16", "--json");
        Assert.True(ecode == 0, eerr);
        var ev = JsonNode.Parse(eout.Trim().Split('\n')[^1])!.AsObject();
        Assert.InRange(ev["accuracy_2x"]!.GetValue<double>(), 0, 1);
        var (tcode, _, terr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "selective"), "--trigger", "early");
        Assert.Equal(1, tcode);
        Assert.Contains("--trigger: only induction heads has a trigger token (run.json: selective-copying)", terr);
    }

    [Fact]
    public void InductionHeadsReportsAccuracyByLengthAndEvalReproducesItsRows()
    {
        var outDir = Path.Combine(_dir, "ih");
        var (code, stdout, stderr) = CliTests.Run(["train", "--task", "induction-heads", "--out", outDir, "--d-model", "16", "--layers", "1", "--d-state", "4",
            "--batch", "8", "--length", "16", "--steps", "3", "--eval-every", "3", "--lengths", "8,16,64", "--samples", "40", "--json"]);
        Assert.True(code == 0, stderr);
        var result = JsonNode.Parse(stdout.Trim().Split('\n')[^1])!.AsObject();
        Assert.Equal("accuracy_by_length", result.Last().Key);   // the last key of the last line, as the issue asks
        foreach (var prefix in new[] { "", "time_invariant_", "transformer_" })
        {
            var byLength = result[prefix + "accuracy_by_length"]!.AsObject();
            Assert.Equal(["8", "16", "64"], byLength.Select(kv => kv.Key));
            Assert.All(byLength, kv => Assert.InRange(kv.Value!.GetValue<double>(), 0, 1));
            Assert.Equal(40, result[prefix + "samples_by_length"]!["64"]!.GetValue<int>());
            Assert.Equal(byLength["16"]!.GetValue<double>(), result[prefix + "accuracy"]!.GetValue<double>());
        }
        // The saved runs (Mamba through its recurrent step, the GPT through its forward) give the same rows again.
        foreach (var (run, prefix, length) in new[] { ("selective", "", "64"), ("transformer", "transformer_", "16"), ("time-invariant", "time_invariant_", "8") })
        {
            var (ecode, eout, eerr) = CliTests.Run("eval", "--run", Path.Combine(outDir, run), "--lengths", length, "--samples", "40", "--json");
            Assert.True(ecode == 0, eerr);
            var ev = JsonNode.Parse(eout.Trim().Split('\n')[^1])!.AsObject();
            Assert.Equal(result[prefix + "accuracy_by_length"]![length]!.GetValue<double>(), ev["accuracy_by_length"]![length]!.GetValue<double>());
        }
        var (bad, _, badErr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "selective"), "--lengths", "64,x");
        Assert.Equal(1, bad);
        Assert.Contains("--lengths: 'x' is not a length from 4 to 1048576", badErr);
        // Beyond the GPT's positions (16 × 16 = 256) is one clear line, before any row is computed.
        var (far, farOut, farErr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "transformer"), "--lengths", "16,512");
        Assert.Equal(1, far);
        Assert.Contains("--lengths: 512 tokens is more than this model's 256 positions", farErr);
        Assert.DoesNotContain("length", farOut);
        var (many, _, manyErr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "selective"), "--samples", "65537");
        Assert.Equal(1, many);
        Assert.Contains("--samples must be in [1, 65,536], got 65537", manyErr);
    }

    [Fact]
    public void StopAndResumeEqualsAnUninterruptedRun()
    {
        var a = Path.Combine(_dir, "a");
        var b = Path.Combine(_dir, "b");
        Assert.Equal(0, Train(a, "--steps", "10", "--ablation", "false").Code);
        var (stopCode, _, stopErr) = Train(b, "--steps", "10", "--ablation", "false", "--stop-after", "5");
        Assert.Equal(130, stopCode);
        Assert.Contains("--resume", stopErr);
        // Without --resume an existing checkpoint is never overwritten.
        var ckpt = Path.Combine(b, "selective", Checkpoint.FileName);
        var saved = File.ReadAllBytes(ckpt);
        var (refuse, _, refuseErr) = Train(b, "--steps", "10", "--ablation", "false");
        Assert.NotEqual(0, refuse);
        Assert.Contains("--resume", refuseErr);
        Assert.Equal(saved, File.ReadAllBytes(ckpt));
        Assert.Equal(0, Train(b, "--steps", "10", "--ablation", "false", "--resume").Code);
        var wa = SafetensorsFile.LoadAll(Path.Combine(a, "selective", "model", "model.safetensors"));
        var wb = SafetensorsFile.LoadAll(Path.Combine(b, "selective", "model", "model.safetensors"));
        Assert.Equal(wa.Keys.Order(), wb.Keys.Order());
        foreach (var (name, t) in wa) Assert.True(t.ToFloatArray().SequenceEqual(wb[name].ToFloatArray()), $"{name} differs after stop + resume");
    }

    [Fact]
    public void ResumeWithAnotherConfigurationIsRefused()
    {
        var outDir = Path.Combine(_dir, "cfg");
        Assert.Equal(0, Train(outDir, "--steps", "4", "--ablation", "false", "--stop-after", "2").Code is 130 ? 0 : 1);
        var ckpt = Path.Combine(outDir, "selective", Checkpoint.FileName);
        var saved = File.ReadAllBytes(ckpt);
        var (code, _, err) = CliTests.Run(["train", "--out", outDir, .. Tiny.Select(s => s == "16" ? "24" : s), "--steps", "4", "--ablation", "false", "--resume"]);
        Assert.NotEqual(0, code);
        Assert.Contains("'d_model' is 16 there, 24 now", err);
        Assert.Equal(saved, File.ReadAllBytes(ckpt));
        File.WriteAllBytes(ckpt, saved[..64]);
        var (code2, _, err2) = Train(outDir, "--steps", "4", "--ablation", "false", "--resume");
        Assert.NotEqual(0, code2);
        Assert.Contains(ckpt, err2);
    }

    /// <summary>--dt-min/--dt-max reach run.json (so --resume checks them), the saved config.json and the initial Δ =
    /// softplus(dt_proj.bias), here in [1e-4, 1e-3] (the default range starts at 1e-3), after one step of lr 1e-6.</summary>
    [Fact]
    public void DtRangeIsRecordedAndSetsTheInitialDelta()
    {
        var outDir = Path.Combine(_dir, "dt");
        var (code, _, stderr) = Train(outDir, "--steps", "1", "--lr", "1e-6", "--ablation", "false", "--dt-min", "1e-4", "--dt-max", "1e-3");
        Assert.True(code == 0, stderr);
        var run = Path.Combine(outDir, "selective");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
        Assert.Equal(1e-4, json["dt_min"]!.GetValue<double>());
        Assert.Equal(1e-3, json["dt_max"]!.GetValue<double>());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "model", "config.json")))!;
        Assert.Equal(1e-4, config["time_step_min"]!.GetValue<double>());
        var bias = SafetensorsFile.LoadAll(Path.Combine(run, "model", "model.safetensors")).Single(kv => kv.Key.EndsWith("dt_proj.bias")).Value.ToFloatArray();
        Assert.All(bias, b => Assert.InRange(Math.Log(1 + Math.Exp(b)), 0.99e-4, 1.01e-3));
    }

    /// <summary>--trigger, --state-passing, the preset's --hold and --adam-eps reach run.json (so --resume checks them) and the
    /// log; the GPT twin passes no state and holds no key.</summary>
    [Fact]
    public void TriggerAndStatePassingAreRecorded()
    {
        var outDir = Path.Combine(_dir, "sp");
        var (code, _, stderr) = CliTests.Run(["train", "--task", "induction-heads", "--out", outDir, "--d-model", "16", "--layers", "1", "--d-state", "4",
            "--batch", "4", "--length", "16", "--steps", "2", "--eval-every", "2", "--lengths", "16", "--samples", "8", "--ablation", "false",
            "--trigger", "mixed", "--state-passing", "0.5"]);
        Assert.True(code == 0, stderr);
        var selective = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "selective", "run.json")))!;
        Assert.Equal("mixed", selective["trigger"]!.GetValue<string>());
        Assert.Equal(0.5, selective["state_passing"]!.GetValue<double>());
        var transformer = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "transformer", "run.json")))!;
        Assert.Equal(0.0, transformer["state_passing"]!.GetValue<double>());
        Assert.Equal(0.9, selective["hold"]!.GetValue<double>());   // the preset's held keys come with state passing
        Assert.Equal(0.0, transformer["hold"]!.GetValue<double>());
        Assert.Equal(1e-8, selective["adam_eps"]!.GetValue<double>(), 1e-12);
        Assert.Equal(0.95, selective["adam_beta2"]!.GetValue<double>(), 1e-6);   // the preset's
        Assert.Equal(0.95, transformer["adam_beta2"]!.GetValue<double>(), 1e-6);
        Assert.Contains("trigger mixed, state passing 0.5", stderr);
        var (ecode, eout, eerr) = CliTests.Run("eval", "--run", Path.Combine(outDir, "selective"), "--lengths", "16", "--samples", "8", "--trigger", "early", "--json");
        Assert.True(ecode == 0, eerr);
        Assert.Equal("early", JsonNode.Parse(eout.Trim().Split('\n')[^1])!["trigger"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("unknown task 'copying'", "--task", "copying")]
    [InlineData("--dt-min/--dt-max: need 0 < dt-min ≤ dt-max < 1000, got 0.1, 0.01", "--dt-min", "0.1", "--dt-max", "0.01")]
    [InlineData("--dt-min/--dt-max: need 0 < dt-min ≤ dt-max < 1000, got 0, 0.1", "--dt-min", "0")]
    [InlineData("--d-model must be a positive integer ≤ 65536, got -4", "--d-model", "-4")]
    [InlineData("--steps must be positive, got 0", "--steps", "0")]
    // batch × length overflowed an int (OverflowException, exit 134) or allocated until the machine ran out
    [InlineData("--batch must be a positive integer ≤ 1048576, got 100000000", "--batch", "100000000")]
    [InlineData("--batch 100000 × sequence length 1008 = 100,800,000 tokens per step, more than the 1,048,576 a step may take", "--batch", "100000", "--length", "1000")]
    [InlineData("--length: the selective-copying region must hold its 8 data tokens, got 1", "--length", "1")]
    [InlineData("--length: an induction-heads sequence needs at least 4 tokens", "--task", "induction-heads", "--length", "2")]
    [InlineData("--warmup must be 0 or more, got -5", "--warmup", "-5")]
    [InlineData("--state-passing 0.01 of --batch 32 is no row", "--task", "induction-heads", "--state-passing", "0.01")]
    [InlineData("--min-lr-ratio must be from 0 to 1, got 2", "--min-lr-ratio", "2")]
    [InlineData("--model must be mamba or transformer, got 'rnn'", "--model", "rnn")]
    [InlineData("--samples must be in [1, 65,536] (0 = the default), got 70000", "--task", "induction-heads", "--samples", "70000")]
    [InlineData("--lengths: '3' is not a length from 4 to 1048576", "--task", "induction-heads", "--lengths", "64,3")]
    [InlineData("--eval-every must be positive, got 0", "--eval-every", "0")]
    [InlineData("--clip must be 0 (off) or more, got -1", "--clip", "-1")]
    [InlineData("--trigger must be uniform, early or mixed, got 'late'", "--task", "induction-heads", "--trigger", "late")]
    [InlineData("--trigger: only induction heads has a trigger token (task is selective-copying)", "--trigger", "early")]
    [InlineData("--state-passing must be a share from 0 to 1, got 1.5", "--state-passing", "1.5")]
    [InlineData("--state-passing: only a Mamba has a state to pass (not --model transformer)", "--model", "transformer", "--state-passing", "0.5")]
    [InlineData("--state-passing carries each row's state from one step to the next: use it with --accumulate 1", "--state-passing", "0.5", "--accumulate", "2")]
    [InlineData("--hold must be a share from 0 to below 1, got 1", "--task", "induction-heads", "--hold", "1")]
    [InlineData("--hold: needs induction heads with --state-passing", "--task", "induction-heads", "--state-passing", "0", "--hold", "0.5")]
    [InlineData("--hold: a Mamba only", "--task", "induction-heads", "--model", "transformer", "--hold", "0.5")]
    [InlineData("--state-passing 0.9 of --batch 4 continues every row", "--task", "induction-heads", "--batch", "4")]
    [InlineData("--adam-eps must be a positive number, got 0", "--adam-eps", "0")]
    [InlineData("--adam-eps must be a positive number, got Infinity", "--adam-eps", "1e50")]   // overflows a float
    [InlineData("--adam-eps must be a positive number, got 0", "--adam-eps", "1e-50")]        // underflows to 0
    [InlineData("--adam-beta2 must be above 0 and below 1, got 1", "--adam-beta2", "1")]
    [InlineData("--adam-beta2 must be above 0 and below 1, got 0", "--adam-beta2", "0")]
    [InlineData("--adam-beta2 must be above 0 and below 1, got NaN", "--adam-beta2", "NaN")]
    [InlineData("--hold must be a share from 0 to below 1, got NaN", "--task", "induction-heads", "--hold", "NaN")]
    public void BadArgumentsFailWithOneClearLine(string expected, params string[] args)
    {
        var (code, _, stderr) = CliTests.Run(["train", "--out", Path.Combine(_dir, "bad"), .. args]);
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void UnwritableOutputFolderIsReported()
    {
        var file = Path.Combine(_dir, "not-a-folder");
        File.WriteAllText(file, "");
        var (code, _, stderr) = Train(Path.Combine(file, "sub"), "--steps", "2");
        Assert.NotEqual(0, code);
        Assert.Contains("cannot be written", stderr);
    }
}

public class TrainSignalTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-sig-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task SigtermWritesACheckpointAndExits130()
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "Mamba4.Cli.dll");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { cli, "train", "--out", _dir, "--d-model", "16", "--layers", "1", "--d-state", "4", "--batch", "4",
                     "--length", "12", "--steps", "100000", "--checkpoint-every", "100000", "--ablation", "false" })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        // Wait for the first progress line, then ask it to stop as a service manager would.
        var seen = new System.Text.StringBuilder();
        while (!seen.ToString().Contains("step "))
        {
            var line = p.StandardError.ReadLine();
            Assert.NotNull(line);
            seen.AppendLine(line);
        }
        System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
        var rest = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.True(p.WaitForExit(60_000), "the trainer did not stop within 60 s of SIGTERM");
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("--resume", await rest);
        await stdout;
        var state = Checkpoint.ReadState(Path.Combine(_dir, "selective", Checkpoint.FileName));
        Assert.True(state["step"]!.GetValue<long>() > 0);
    }
}
