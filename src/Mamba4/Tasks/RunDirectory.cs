using System.Text.Json;
using System.Text.Json.Nodes;
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

    /// <summary>Creates the folder and checks that it can be written; nothing about checkpoints is decided here.</summary>
    public static RunDirectory Create(string path)
    {
        try
        {
            Directory.CreateDirectory(path);
            var probe = System.IO.Path.Combine(path, ".write-test");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output folder {path} cannot be written: {e.Message}", e);
        }
        return new RunDirectory(path);
    }

    /// <summary>The folder of a run that may be resumed: a checkpoint there without <paramref name="resume"/>, or
    /// <paramref name="resume"/> without one, is an error naming the folder (nothing is trained or written).</summary>
    public static RunDirectory Open(string path, bool resume)
    {
        var run = Create(path);
        run.CheckResume(resume);
        return run;
    }

    /// <summary>The resume guard of one run folder.</summary>
    public void CheckResume(bool resume)
    {
        if (HasCheckpoint && !resume)
            throw new IOException($"{Path} already holds a checkpoint; pass --resume to continue it, or choose another --out");
        if (!HasCheckpoint && resume)
            throw new IOException($"--resume: {Path} holds no {Checkpoint.FileName} to continue (start without --resume, or name the folder of the interrupted run with --out)");
    }

    /// <summary>The resume guard of a run made of sub-runs (a comparison, an ablation), checked before any of them trains:
    /// a checkpoint in any of <paramref name="runs"/> needs <paramref name="resume"/>; <paramref name="resume"/> needs one in at least one.</summary>
    public void CheckResume(IReadOnlyList<RunDirectory> runs, bool resume)
    {
        if (!resume)
            foreach (var run in runs) run.CheckResume(false);
        else if (!runs.Any(r => r.HasCheckpoint))
            throw new IOException($"--resume: {Path} holds no {Checkpoint.FileName} in {string.Join(" or ", runs.Select(r => System.IO.Path.GetFileName(r.Path)))} to continue " +
                                  "(start without --resume, or name the folder of the interrupted run with --out)");
    }

    /// <summary>A sub-run's folder (e.g. the selective model and its ablation side by side).</summary>
    public RunDirectory Child(string name) => Create(System.IO.Path.Combine(Path, name));

    /// <summary>run.json: the run's configuration, the device and the engine settings it ran under.</summary>
    public void WriteRunJson(JsonObject config, Tensors.Device device, Backends.EngineSettings engine)
    {
        var o = config.DeepClone().AsObject();
        var numerics = engine.ToJson();
        numerics["device"] = device.ToString();
        o["numerics"] = numerics;
        File.WriteAllText(System.IO.Path.Combine(Path, RunJsonFile), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The metrics.jsonl lines, parsed.</summary>
    public List<JsonObject> ReadMetrics() =>
        File.Exists(MetricsPath) ? File.ReadAllLines(MetricsPath).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList() : [];
}
