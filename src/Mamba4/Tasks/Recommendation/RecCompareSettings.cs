namespace Mamba4.Tasks.Recommendation;

/// <summary>Every setting of `mamba4 rec compare`: the models, and what they share (data, sizes, protocol, output folder, device).</summary>
public sealed record RecCompareSettings
{
    /// <summary>Models trained one after the other, each in its own sub-folder.</summary>
    public IReadOnlyList<string> Models { get; init; } = RecModels.Kinds;
    /// <summary>What every model shares: its Model's kind is ignored and its residual applies to Mamba4Rec only; its
    /// OutputDirectory is the comparison's folder (null = runs/rec-compare).</summary>
    public RecTrainSettings Shared { get; init; } = new();

    public string OutputOrDefault => Shared.OutputDirectory ?? Path.Combine("runs", "rec-compare");

    /// <summary>The settings of one model of the comparison.</summary>
    public RecTrainSettings For(string kind)
    {
        kind = RecModels.ParseKind(kind);
        return Shared with { Model = Shared.Model with { Kind = kind, Residual = kind == "mamba4rec" ? Shared.Model.Residual : null,
            Mixer = kind == "mamba4rec" ? Shared.Model.Mixer : "mamba1", HeadDim = kind == "mamba4rec" ? Shared.Model.HeadDim : null,
            Attention = kind is "sasrec" or "bert4rec" ? Shared.Model.Attention : "fused" } };
    }

    public void Validate()
    {
        foreach (var kind in Models) For(kind).Validate();
    }
}
