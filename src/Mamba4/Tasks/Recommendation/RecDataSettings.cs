using System.Text.Json.Nodes;
using Mamba4.Data.Recommendation;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Where `mamba4 rec` reads its interactions, and the k-core filter applied to them (RecBole's 5-core).</summary>
public sealed record RecDataSettings
{
    /// <summary>An interaction file; null = the built-in synthetic dataset.</summary>
    public string? Path { get; init; }
    /// <summary>One of <see cref="RecFormats.Names"/>; null = guessed from the file name.</summary>
    public string? Format { get; init; }
    /// <summary>Skip (and count) malformed lines instead of failing.</summary>
    public bool SkipBadLines { get; init; }
    /// <summary>The k-core filter: users and items with fewer interactions are removed, round after round.</summary>
    public int MinUserInteractions { get; init; } = 5;
    public int MinItemInteractions { get; init; } = 5;

    /// <summary>Reads (or generates) the interactions and filters them; the skipped lines and the dataset's statistics go to <paramref name="log"/>.</summary>
    public SequenceDataset Load(TextWriter log)
    {
        var interactions = RecData.Read(Path, Format, SkipBadLines);
        if (interactions.BadLines > 0)
        {
            log.WriteLine($"skipped {interactions.BadLines:N0} malformed line(s) of {interactions.Source}");
            foreach (var m in interactions.BadLineMessages) log.WriteLine("  " + m);
        }
        var data = SequenceDataset.Build(interactions, MinUserInteractions, MinItemInteractions);
        log.WriteLine($"data: {Path ?? "built-in synthetic"}: {interactions.Count:N0} interactions read; after the {MinUserInteractions}-core filter " +
                      $"({data.FilterRounds} round(s), {data.RemovedInteractions:N0} removed): {data.Statistics}");
        return data;
    }

    /// <summary>What defines the data of a run (for run.json and the resume check).</summary>
    public JsonObject ToJson() => new()
    {
        ["data"] = Path is null ? "built-in" : System.IO.Path.GetFullPath(Path), ["format"] = Format,
        ["min_user_interactions"] = MinUserInteractions, ["min_item_interactions"] = MinItemInteractions,
    };
}
