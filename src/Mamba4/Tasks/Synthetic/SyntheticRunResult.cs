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

    private static JsonObject ByLength<T>(SyntheticModelResult r, Func<LengthAccuracy, T> value)
    {
        var o = new JsonObject();
        foreach (var (length, a) in r.ByLength) o[length.ToString(CultureInfo.InvariantCulture)] = JsonValue.Create(value(a));
        return o;
    }

    /// <summary>
    /// The first model's accuracies under their own names; the others' prefixed with their name. Induction heads add
    /// "accuracy_by_length" per model (the first model's is the last key), with the sequences and seconds each length took.
    /// </summary>
    public JsonObject ToJson()
    {
        var first = Models[0];
        var o = new JsonObject
        {
            ["task"] = first.Options.Task,
            ["model"] = new JsonObject { ["d_model"] = first.Options.DModel, ["layers"] = first.Options.Layers, ["d_state"] = first.Options.DState, ["selective"] = first.Options.Selective, ["transformer"] = first.Options.Transformer },
            ["steps"] = first.Train.Step,
            ["seconds"] = Math.Round(Models.Sum(r => r.Train.Seconds), 2),
        };
        foreach (var r in Models)
        {
            string prefix = r == first ? "" : $"{r.Name.Replace('-', '_')}_";
            foreach (var (k, v) in r.Final) o[prefix + k] = v;
            if (r.ByLength.Count == 0) continue;
            o[prefix + "training_seconds"] = Math.Round(r.Train.Seconds, 2);
            o[prefix + "samples_by_length"] = ByLength(r, a => a.Samples);
            o[prefix + "eval_seconds_by_length"] = ByLength(r, a => Math.Round(a.Seconds, 2));
            o[prefix + "accuracy_by_length"] = ByLength(r, a => a.Accuracy);
        }
        if (o["accuracy_by_length"] is { } headline && o.Remove("accuracy_by_length")) o["accuracy_by_length"] = headline;   // the selective model's table last
        return o;
    }
}
