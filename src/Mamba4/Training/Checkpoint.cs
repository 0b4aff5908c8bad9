using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Nn;

namespace Mamba4.Training;

/// <summary>
/// One file holding everything a run needs to continue exactly: the weights ("model.NAME"), the
/// optimizer moments ("optim.exp_avg.NAME", "optim.exp_avg_sq.NAME") and, in the safetensors metadata,
/// the trainer state as JSON (step, optimizer step count, seed, data position, the run's configuration).
/// Written atomically: a temp file in the same folder, fsync, rename.
/// </summary>
public static class Checkpoint
{
    public const string FileName = "checkpoint.safetensors";
    private const string StateKey = "mamba4.trainer_state";

    public static void Save(string path, Module model, AdamW optimizer, JsonObject state)
    {
        var tensors = model.NamedParameters().Select(p => ("model." + p.Name, p.Tensor))
            .Concat(optimizer.State().Select(s => ("optim." + s.Name, s.Tensor)));
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "mamba4-checkpoint", [StateKey] = state.ToJsonString() });
    }

    /// <summary>Reads the trainer state only (to compare configurations before touching anything).</summary>
    public static JsonObject ReadState(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return ParseState(file, path);
    }

    private static JsonObject ParseState(SafetensorsFile file, string path)
    {
        if (!file.Metadata.TryGetValue(StateKey, out var json))
            throw new InvalidDataException($"{path}: not a Mamba4 training checkpoint (metadata '{StateKey}' is missing)");
        try
        {
            return JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{path}: trainer state is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: trainer state is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>Loads weights and optimizer moments into <paramref name="model"/> and <paramref name="optimizer"/>; returns the trainer state.</summary>
    public static JsonObject Load(string path, Module model, AdamW optimizer)
    {
        using var file = SafetensorsFile.Open(path);
        var state = ParseState(file, path);
        var source = file.Tensors.Where(t => t.Name.StartsWith("model.", StringComparison.Ordinal))
            .ToDictionary(t => t.Name["model.".Length..], t => (t.Shape, (Func<Tensor>)(() => file.Get(t.Name, Tensors.DType.F32))));
        StateDict.Load(model, source, path, strict: true);
        optimizer.LoadState(name => file.Contains("optim." + name) ? file.Get("optim." + name, Tensors.DType.F32) : null);
        return state;
    }
}
