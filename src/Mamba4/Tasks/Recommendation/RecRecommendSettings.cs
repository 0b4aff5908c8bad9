using Mamba4.Tensors;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Every setting of `mamba4 rec recommend`, with its default: one user (a history, or a user of a data file) or a file of users.</summary>
public sealed record RecRecommendSettings
{
    /// <summary>A model directory (written by `rec train`, or a fixture).</summary>
    public required string Checkpoint { get; init; }
    /// <summary>The model kind when config.json does not say.</summary>
    public string? Kind { get; init; }
    /// <summary>The user's items, oldest first, comma-separated.</summary>
    public string? History { get; init; }
    /// <summary>A user of <see cref="Data"/>: the whole history in the file.</summary>
    public string? User { get; init; }
    /// <summary>Batch mode: a file of histories, one line per user (`user item item ...`, oldest first).</summary>
    public string? Histories { get; init; }
    /// <summary>The data file of <see cref="User"/>; its SkipBadLines applies to <see cref="Histories"/> too.</summary>
    public RecDataSettings Data { get; init; } = new();
    /// <summary>Histories give item ids, not the original item tokens.</summary>
    public bool Ids { get; init; }
    public int Top { get; init; } = 10;
    /// <summary>Never recommend an item already in the history.</summary>
    public bool ExcludeHistory { get; init; }
    /// <summary>One JSON object (items, ids, scores) as the last line; batch mode: one JSON object per user.</summary>
    public bool Json { get; init; }
    /// <summary>Batch mode: users scored together (grouped by history length).</summary>
    public int BatchUsers { get; init; } = 512;
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>How the model is loaded (--allow-nonfinite).</summary>
    public IO.ModelLoadOptions Load { get; init; } = IO.ModelLoadOptions.Default;

    public void Validate()
    {
        if (Top < 1) throw new ArgumentException($"--top must be positive, got {Top}");
        if (BatchUsers < 1) throw new ArgumentException($"batch of users must be positive, got {BatchUsers}");
        if (Histories is not null && (History is not null || User is not null)) throw new ArgumentException("give --histories, --history or --user, not two of them");
        if (User is not null && History is not null) throw new ArgumentException("give --history or --user, not both");
        if (User is not null && Data.Path is null) throw new ArgumentException("--user needs --data (the file holding the user's interactions)");
        if (Histories is null && User is null && History is null) throw new ArgumentException("give --history (items, comma-separated) or --user with --data");
    }
}
