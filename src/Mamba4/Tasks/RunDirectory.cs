using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Training;

namespace Mamba4.Tasks;

/// <summary>
/// The output folder of a training run, shared by every task family: checked writable before any training time is
/// spent, the resume guard (a checkpoint there needs --resume; --resume needs a checkpoint), and the files every run
/// writes (checkpoint.safetensors, metrics.jsonl, run.json, report.html, model/).
/// </summary>
public sealed class RunDirectory
{
    public const string RunJsonFile = "run.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string ReportFile = "report.html";
    public const string ModelFolder = "model";

    private RunDirectory(string path) => Path = path;

    public string Path { get; }
    public string CheckpointPath => System.IO.Path.Combine(Path, Checkpoint.FileName);
    public string MetricsPath => System.IO.Path.Combine(Path, MetricsFile);
    public string ReportPath => System.IO.Path.Combine(Path, ReportFile);
    public string ModelPath => System.IO.Path.Combine(Path, ModelFolder);
    public bool HasCheckpoint => File.Exists(CheckpointPath);

    /// <summary>A run folder at <paramref name="path"/>; nothing is checked or created yet.</summary>
    public static RunDirectory At(string path) => new(path);

    /// <summary>The folder of a run that may be resumed, checked before anything is created: a checkpoint there without
    /// <paramref name="resume"/>, or <paramref name="resume"/> without one, is an error naming the folder; then the folder is created, checked writable,
    /// and cleared of the temporary files an interrupted write of ours left there (<see cref="AtomicFile.RemoveStale"/>),
    /// each named on <paramref name="log"/>.</summary>
    public static RunDirectory Open(string path, bool resume, TextWriter? log = null)
    {
        var run = new RunDirectory(path);
        run.CheckResume(resume);
        run.Prepare(log);
        return run;
    }

    /// <summary>The folder of a run made of sub-runs (a comparison, an ablation), the guard checked over all of them
    /// before anything is created or trained; the sub-runs' folders are <see cref="Child"/>ren of it.</summary>
    public static RunDirectory Open(string path, IReadOnlyList<string> children, bool resume, TextWriter? log = null)
    {
        var run = new RunDirectory(path);
        run.CheckResume(children.Select(run.Child).ToList(), resume);
        run.Prepare(log);
        return run;
    }

    private void Prepare(TextWriter? log)
    {
        try
        {
            Directory.CreateDirectory(Path);
            var probe = System.IO.Path.Combine(Path, ".write-test");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output folder {Path} cannot be written: {e.Message}", e);
        }
        foreach (var stale in AtomicFile.RemoveStale(Path))
            log?.WriteLine($"removed stale temporary file {stale} (left by an interrupted write)");
    }

    /// <summary>The resume guard of one run folder.</summary>
    public void CheckResume(bool resume)
    {
        if (HasCheckpoint && !resume)
            throw new IOException($"{Path} already holds a checkpoint; pass --resume to continue it, or choose another --out");
        if (!HasCheckpoint && resume)
            throw new IOException($"--resume: {Path} holds no {Checkpoint.FileName} to continue (start without --resume, or name the folder of the interrupted run with --out)");
    }

    /// <summary>The resume guard of a run made of sub-runs: a checkpoint in any of <paramref name="runs"/> needs
    /// <paramref name="resume"/>; <paramref name="resume"/> needs one in at least one.</summary>
    public void CheckResume(IReadOnlyList<RunDirectory> runs, bool resume)
    {
        if (!resume)
            foreach (var run in runs) run.CheckResume(false);
        else if (!runs.Any(r => r.HasCheckpoint))
            throw new IOException($"--resume: {Path} holds no {Checkpoint.FileName} in {string.Join(" or ", runs.Select(r => System.IO.Path.GetFileName(r.Path)))} to continue " +
                                  "(start without --resume, or name the folder of the interrupted run with --out)");
    }

    /// <summary>A sub-run's folder (e.g. the selective model and its ablation side by side); created by the first write.</summary>
    public RunDirectory Child(string name) => new(System.IO.Path.Combine(Path, name));

    /// <summary>run.json: the run's configuration, the device and the engine settings it ran under.</summary>
    public void WriteRunJson(JsonObject config, Tensors.Device device, Backends.EngineSettings engine)
    {
        Directory.CreateDirectory(Path);
        var o = config.DeepClone().AsObject();
        var numerics = engine.ToJson();
        numerics["device"] = device.ToString();
        o["numerics"] = numerics;
        AtomicFile.WriteAllText(System.IO.Path.Combine(Path, RunJsonFile), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The report's two curves from one read of metrics.jsonl: (step, training loss) of every logged step, and
    /// (step, value) of the evaluation metric <paramref name="evalMetric"/> each time one was logged.</summary>
    public (List<(double Step, double Value)> Loss, List<(double Step, double Value)> Eval) Curves(string evalMetric)
    {
        var lines = ReadMetrics();
        return (lines.Where(l => l.ContainsKey("loss")).Select(l => (l["step"]!.GetValue<double>(), l["loss"]!.GetValue<double>())).ToList(),
                lines.Where(l => l.ContainsKey("eval")).Select(l => (l["eval"]!["step"]!.GetValue<double>(), l["eval"]![evalMetric]!.GetValue<double>())).ToList());
    }

    /// <summary>The metrics.jsonl lines, parsed.</summary>
    public List<JsonObject> ReadMetrics() =>
        File.Exists(MetricsPath) ? File.ReadAllLines(MetricsPath).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList() : [];
}
