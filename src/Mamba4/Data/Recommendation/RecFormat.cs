namespace Mamba4.Data.Recommendation;

/// <summary>The interaction file formats the readers understand.</summary>
public enum RecFormat
{
    /// <summary>MovieLens: <c>ratings.dat</c> (<c>UserID::MovieID::Rating::Timestamp</c>, ML-1M/10M) or <c>u.data</c>
    /// (tab-separated, same columns, ML-100K); which one is detected from the first line.</summary>
    Ml,
    /// <summary>RecBole atomic <c>.inter</c>: tab-separated, a typed header such as
    /// <c>user_id:token	item_id:token	rating:float	timestamp:float</c>.</summary>
    Atomic,
    /// <summary>CSV with a header; the user, item and timestamp columns are chosen by name.</summary>
    Csv,
    /// <summary>One line per user, <c>user item item …</c> in time order (S3-Rec style, e.g. Beauty.txt).</summary>
    Seq,
    /// <summary>One <c>user item</c> pair per line, each user's lines in time order (SASRec style).</summary>
    Pairs,
}

public static class RecFormats
{
    public const string Names = "ml, atomic, csv, seq, pairs";

    /// <summary>Parses a format name (case-insensitive): ml, atomic, csv, seq, pairs.</summary>
    public static RecFormat Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "ml" or "movielens" => RecFormat.Ml,
        "atomic" or "inter" => RecFormat.Atomic,
        "csv" => RecFormat.Csv,
        "seq" => RecFormat.Seq,
        "pairs" => RecFormat.Pairs,
        _ => throw new ArgumentException($"unknown data format '{name}'; expected one of {Names}"),
    };

    /// <summary>The format a file name suggests (<c>.inter</c>, <c>.csv</c>, <c>ratings.dat</c>, <c>u.data</c>, each also with <c>.gz</c>), or null.</summary>
    public static RecFormat? Guess(string path)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        if (name.EndsWith(".gz", StringComparison.Ordinal)) name = name[..^3];   // ratings.dat.gz is ml
        if (name.EndsWith(".inter", StringComparison.Ordinal)) return RecFormat.Atomic;
        if (name.EndsWith(".csv", StringComparison.Ordinal)) return RecFormat.Csv;
        if (name is "u.data" or "ratings.dat" || name.EndsWith(".dat", StringComparison.Ordinal)) return RecFormat.Ml;
        return null;
    }

    public static string Name(this RecFormat format) => format.ToString().ToLowerInvariant();
}

/// <summary>How the readers treat their input.</summary>
public sealed record RecReadOptions
{
    /// <summary>Skip malformed lines, counting them (<see cref="InteractionLog.BadLines"/>), instead of throwing.</summary>
    public bool SkipBadLines { get; init; }
    /// <summary>How many skipped lines keep their message in <see cref="InteractionLog.BadLineMessages"/>.</summary>
    public int MaxReportedBadLines { get; init; } = 10;
    /// <summary>atomic/csv: the user column (atomic default <c>user_id</c>; csv tries user_id, userId, user, uid, …).</summary>
    public string? UserField { get; init; }
    /// <summary>atomic/csv: the item column (atomic default <c>item_id</c>; csv tries item_id, itemId, item, movieId, …).</summary>
    public string? ItemField { get; init; }
    /// <summary>atomic/csv: the time column (default <c>timestamp</c>, csv also tries time, ts, …). The empty string means
    /// "none: the file is in time order".</summary>
    public string? TimeField { get; init; }
    /// <summary>csv: the field separator.</summary>
    public char CsvDelimiter { get; init; } = ',';
}

/// <summary>A malformed interaction file: names the file, the 1-based line and what was expected there.</summary>
public sealed class RecDataFormatException(string file, int line, string reason)
    : FormatException($"{file}:{line}: {reason}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
    public string Reason { get; } = reason;
}
