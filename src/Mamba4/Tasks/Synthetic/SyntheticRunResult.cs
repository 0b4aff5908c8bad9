using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.IO;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

public sealed record SyntheticRunResult(IReadOnlyList<SyntheticModelResult> Models, bool Interrupted, string OutputDirectory)
{
    public string ReportPath => Path.Combine(OutputDirectory, RunDirectory.ReportFile);

    public string Summary =>
        $"{Models[0].Options.Task}: " + string.Join(" vs ", Models.Select(r => $"{r.Name} {r.Final["accuracy"].ToString("P1", CultureInfo.InvariantCulture)}")) +
        $" token accuracy after {Models[0].Train.Step} steps ({Models.Sum(r => r.Train.Seconds):F0} s); report: {ReportPath}";

    /// <summary>The first model's accuracies under their own names; the others' prefixed with their name.</summary>
    public JsonObject ToJson()
    {
        var first = Models[0];
        var o = new JsonObject
        {
            ["task"] = first.Options.Task,
            ["model"] = new JsonObject { ["d_model"] = first.Options.DModel, ["layers"] = first.Options.Layers, ["d_state"] = first.Options.DState, ["selective"] = first.Options.Selective },
            ["steps"] = first.Train.Step,
            ["seconds"] = Math.Round(Models.Sum(r => r.Train.Seconds), 2),
        };
        foreach (var (k, v) in first.Final) o[k] = v;
        foreach (var r in Models.Skip(1))
            foreach (var (k, v) in r.Final) o[$"{r.Name.Replace('-', '_')}_{k}"] = v;
        return o;
    }
}
