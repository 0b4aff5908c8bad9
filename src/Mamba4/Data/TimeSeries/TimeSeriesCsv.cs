using System.Globalization;
using System.Text;
using Mamba4.IO;

namespace Mamba4.Data.TimeSeries;

/// <summary>How missing values (empty fields, NA, NaN, null) are filled; <see cref="None"/> makes them an error.</summary>
public enum FillMethod
{
    None,
    /// <summary>Carry the last observed value forward (a leading gap takes the first observed value).</summary>
    Forward,
    /// <summary>Straight line between the observed neighbours (a leading or trailing gap takes the nearest one).</summary>
    Linear,
    Zero,
}

public sealed record TimeSeriesCsvOptions
{
    /// <summary>The timestamp column; null: a column named date, datetime, timestamp or time if there is one.</summary>
    public string? DateColumn { get; init; }
    /// <summary>The numeric columns to read, in this order; null: every column but the date column.</summary>
    public IReadOnlyList<string>? Columns { get; init; }
    public FillMethod Fill { get; init; } = FillMethod.None;

    public static FillMethod ParseFill(string text) => text.Trim().ToLowerInvariant() switch
    {
        "none" or "" => FillMethod.None,
        "ffill" or "forward" or "forward-fill" => FillMethod.Forward,
        "linear" or "interpolate" => FillMethod.Linear,
        "zero" or "zeros" => FillMethod.Zero,
        _ => throw new ArgumentException($"--fill must be none, ffill, linear or zero, got '{text}'"),
    };
}

/// <summary>
/// Reads a time series from CSV: a header line naming the columns, then one row per time step in time
/// order (comma-separated; ';' or tab when the header has no comma; fields may be double-quoted).
/// Every problem is reported as <c>FILE:LINE: column 'NAME': what is wrong</c>.
/// </summary>
public static class TimeSeriesCsv
{
    private static readonly string[] DateNames = ["date", "datetime", "timestamp", "time"];
    private static readonly string[] MissingTokens = ["", "na", "nan", "n/a", "null", "none", "?"];

    public static TimeSeriesTable Read(string path, TimeSeriesCsvOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        using var reader = DataFile.OpenText(path);   // plain or gzip
        return Parse(reader, path, options);
    }

    public static TimeSeriesTable Parse(TextReader reader, string source, TimeSeriesCsvOptions? options = null)
    {
        options ??= new TimeSeriesCsvOptions();
        var headerLine = reader.ReadLine() ?? throw new InvalidDataException($"{source}: the file is empty (expected a header line naming the columns)");
        char sep = DetectSeparator(headerLine);
        var header = SplitLine(headerLine, sep, source, 1).Select(h => h.Trim()).ToArray();
        for (int i = 0; i < header.Length; i++)
        {
            if (header[i].Length == 0) throw new InvalidDataException($"{source}:1: column {i + 1} of the header has no name");
            for (int j = 0; j < i; j++)
                if (header[j] == header[i]) throw new InvalidDataException($"{source}:1: the header names column '{header[i]}' twice");
        }

        int Find(string name) => Array.FindIndex(header, h => h == name) is var i and >= 0 ? i : Array.FindIndex(header, h => string.Equals(h, name, StringComparison.OrdinalIgnoreCase));
        string Known() => string.Join(", ", header);

        int dateIndex = -1;
        if (options.DateColumn is { } dc)
        {
            dateIndex = Find(dc);
            if (dateIndex < 0) throw new InvalidDataException($"{source}: no date column '{dc}'; the header has: {Known()}");
        }
        else
            foreach (var n in DateNames)
                if ((dateIndex = Find(n)) >= 0) break;

        int[] picked;
        if (options.Columns is { Count: > 0 } wanted)
        {
            picked = new int[wanted.Count];
            for (int k = 0; k < wanted.Count; k++)
            {
                picked[k] = Find(wanted[k]);
                if (picked[k] < 0) throw new InvalidDataException($"{source}: no column '{wanted[k]}'; the header has: {Known()}");
                if (picked[k] == dateIndex) throw new InvalidDataException($"{source}: column '{wanted[k]}' is the date column; choose numeric columns");
                if (Array.IndexOf(picked, picked[k], 0, k) >= 0) throw new InvalidDataException($"{source}: column '{wanted[k]}' is asked for twice");
            }
        }
        else picked = Enumerable.Range(0, header.Length).Where(i => i != dateIndex).ToArray();
        if (picked.Length == 0) throw new InvalidDataException($"{source}: no numeric columns (the header has only: {Known()})");
        var names = picked.Select(i => header[i]).ToArray();

        var values = new List<double>();
        var stamps = dateIndex >= 0 ? new List<DateTime>() : null;
        var gaps = new List<(int Row, int Column, int Line)>();
        var lines = new List<int>();
        int lineNo = 1;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var fields = SplitLine(line, sep, source, lineNo);
            if (fields.Count != header.Length)
                throw new InvalidDataException($"{source}:{lineNo}: expected {header.Length} fields as in the header, found {fields.Count}");
            int row = values.Count / picked.Length;
            lines.Add(lineNo);
            if (stamps is not null)
            {
                var text = fields[dateIndex].Trim();
                if (!DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AllowWhiteSpaces | DateTimeStyles.RoundtripKind, out var t))
                    throw new InvalidDataException($"{source}:{lineNo}: column '{header[dateIndex]}': '{Clip(text)}' is not a date/time");
                if (stamps.Count > 0 && t <= stamps[^1])
                    throw new InvalidDataException($"{source}:{lineNo}: column '{header[dateIndex]}': {t:yyyy-MM-dd HH:mm:ss} does not come after the previous row's {stamps[^1]:yyyy-MM-dd HH:mm:ss} (rows must be in time order, without repeats)");
                stamps.Add(t);
            }
            for (int k = 0; k < picked.Length; k++)
            {
                var text = fields[picked[k]].Trim();
                if (MissingTokens.Contains(text.ToLowerInvariant()))
                {
                    if (options.Fill == FillMethod.None)
                        throw new InvalidDataException($"{source}:{lineNo}: column '{names[k]}' has no value{(text.Length > 0 ? $" ('{text}')" : "")}; pass --fill ffill, linear or zero to fill gaps");
                    gaps.Add((row, k, lineNo));
                    values.Add(double.NaN);
                    continue;
                }
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                    throw new InvalidDataException($"{source}:{lineNo}: column '{names[k]}': '{Clip(text)}' is not a number");
                if (!double.IsFinite(v))
                    throw new InvalidDataException($"{source}:{lineNo}: column '{names[k]}': '{Clip(text)}' is not a finite number");
                values.Add(v);
            }
        }
        if (values.Count == 0) throw new InvalidDataException($"{source}: no data rows after the header");
        var data = values.ToArray();
        if (gaps.Count > 0) FillGaps(data, picked.Length, options.Fill, source, names);
        return new TimeSeriesTable(source, names, data, stamps?.ToArray(), dateIndex >= 0 ? header[dateIndex] : null) { Lines = [.. lines] };
    }

    /// <summary>Fills the NaN entries of each column in place.</summary>
    public static void FillGaps(double[] data, int columns, FillMethod fill, string source, IReadOnlyList<string> names)
    {
        int rows = data.Length / columns;
        for (int c = 0; c < columns; c++)
        {
            int first = -1;
            for (int r = 0; r < rows && first < 0; r++) if (!double.IsNaN(data[r * columns + c])) first = r;
            if (first < 0)
            {
                if (fill == FillMethod.Zero) { for (int r = 0; r < rows; r++) data[r * columns + c] = 0; continue; }
                throw new InvalidDataException($"{source}: column '{names[c]}' has no values at all");
            }
            int prev = -1; // last observed row
            for (int r = 0; r < rows; r++)
            {
                ref double v = ref data[r * columns + c];
                if (!double.IsNaN(v)) { prev = r; continue; }
                switch (fill)
                {
                    case FillMethod.Zero: v = 0; break;
                    case FillMethod.Forward: v = data[(prev >= 0 ? prev : first) * columns + c]; break;
                    case FillMethod.Linear:
                        int next = r + 1;
                        while (next < rows && double.IsNaN(data[next * columns + c])) next++;
                        if (prev < 0) v = data[first * columns + c];
                        else if (next >= rows) v = data[prev * columns + c];
                        else
                        {
                            double a = data[prev * columns + c], b = data[next * columns + c];
                            v = a + (b - a) * (r - prev) / (next - prev);
                        }
                        break;
                    default: throw new InvalidDataException($"{source}: column '{names[c]}' has gaps; choose a fill method");
                }
            }
        }
    }

    /// <summary>',' when the header has one outside quotes, else ';' or tab, else ','.</summary>
    private static char DetectSeparator(string header)
    {
        var outside = new StringBuilder();
        bool quoted = false;
        foreach (var ch in header)
        {
            if (ch == '"') quoted = !quoted;
            else if (!quoted) outside.Append(ch);
        }
        var o = outside.ToString();
        return o.Contains(',') ? ',' : o.Contains(';') ? ';' : o.Contains('\t') ? '\t' : ',';
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";

    /// <summary>Splits one CSV line; double-quoted fields may hold the separator and "" for a quote.</summary>
    internal static List<string> SplitLine(string line, char sep, string source, int lineNo)
    {
        var fields = CsvLine.Split(line, sep, out var e);
        if (e is null) return fields;
        throw new InvalidDataException(e.Unterminated ? $"{source}:{lineNo}: a quoted field is not closed"
            : $"{source}:{lineNo}: text after a closing quote in field {e.Field}");
    }
}
