using System.Globalization;
using Mamba4.IO;

namespace Mamba4.Data.Recommendation;

/// <summary>
/// Reads interaction files (<see cref="RecFormat"/>) into an <see cref="InteractionLog"/>. Blank lines are ignored.
/// A malformed line throws <see cref="RecDataFormatException"/> naming file:line and what was expected, unless
/// <see cref="RecReadOptions.SkipBadLines"/> is set: then it is counted and skipped. A bad header (atomic, csv) is
/// always fatal.
/// </summary>
public static class InteractionReader
{
    public static InteractionLog Read(string path, RecFormat format, RecReadOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"interaction file not found: {path}", path);
        using var reader = DataFile.OpenText(path);   // plain or gzip
        return Read(reader, path, format, options);
    }

    /// <summary>Reads from any text source; <paramref name="sourceName"/> names it in messages.</summary>
    public static InteractionLog Read(TextReader reader, string sourceName, RecFormat format, RecReadOptions? options = null)
    {
        options ??= new RecReadOptions();
        var ctx = new Context(reader, sourceName, options);
        return format switch
        {
            RecFormat.Ml => ReadMl(ctx),
            RecFormat.Atomic => ReadAtomic(ctx),
            RecFormat.Csv => ReadCsv(ctx),
            RecFormat.Seq => ReadSeq(ctx),
            RecFormat.Pairs => ReadPairs(ctx),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown format"),
        };
    }

    /// <summary>Line reading, numbering and the bad-line policy.</summary>
    private sealed class Context(TextReader reader, string source, RecReadOptions options)
    {
        public string Source { get; } = source;
        public RecReadOptions Options { get; } = options;
        public int LineNumber { get; private set; }

        /// <summary>The next non-blank line (without its line break), or null at the end.</summary>
        public string? Next()
        {
            while (true)
            {
                var line = reader.ReadLine();
                if (line is null) return null;
                LineNumber++;
                if (!string.IsNullOrWhiteSpace(line)) return line.TrimEnd('\r');
            }
        }

        public RecDataFormatException Error(string reason) => new(Source, LineNumber, reason);

        /// <summary>Throws, or (skipping bad lines) records the problem and returns.</summary>
        public void Bad(InteractionLogBuilder builder, string reason)
        {
            if (!Options.SkipBadLines) throw Error(reason);
            builder.AddBadLine($"{Source}:{LineNumber}: {reason}", Options.MaxReportedBadLines);
        }
    }

    private static string Show(string line) => line.Length <= 80 ? $"\"{line}\"" : $"\"{line[..77]}...\"";

    private static bool TryNumber(string s, out double value) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    // ---- ml: ratings.dat (::) or u.data (tab) ----
    private static InteractionLog ReadMl(Context ctx)
    {
        var builder = new InteractionLogBuilder(ctx.Source, hasTimestamps: true);
        string? sep = null, layout = null;
        for (var line = ctx.Next(); line is not null; line = ctx.Next())
        {
            if (sep is null)
            {
                if (line.Contains("::", StringComparison.Ordinal)) (sep, layout) = ("::", "UserID::MovieID::Rating::Timestamp (ratings.dat)");
                else if (line.Contains('\t')) (sep, layout) = ("\t", "user<TAB>item<TAB>rating<TAB>timestamp (u.data)");
                else
                {
                    // Undetectable: fatal, or (skipping bad lines) counted while the layout is still unknown.
                    ctx.Bad(builder, $"expected MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp) or u.data (user<TAB>item<TAB>rating<TAB>timestamp), found {Show(line)}");
                    continue;
                }
            }
            var f = line.Split(sep);
            if (f.Length != 4)
            {
                ctx.Bad(builder, $"expected 4 fields {layout}, found {f.Length} in {Show(line)}");
                continue;
            }
            string user = f[0].Trim(), item = f[1].Trim();
            if (user.Length == 0 || item.Length == 0)
            {
                ctx.Bad(builder, $"expected a user id and an item id, found an empty one in {Show(line)}");
                continue;
            }
            if (!TryNumber(f[2].Trim(), out _))
            {
                ctx.Bad(builder, $"expected a numeric rating in field 3, found \"{f[2]}\"");
                continue;
            }
            if (!TryNumber(f[3].Trim(), out var time))
            {
                ctx.Bad(builder, $"expected a numeric unix timestamp in field 4, found \"{f[3]}\"");
                continue;
            }
            builder.Add(user, item, time, ctx.LineNumber);
        }
        return builder.Build();
    }

    // ---- atomic: RecBole .inter ----
    private static readonly string[] AtomicTypes = ["token", "token_seq", "float", "float_seq"];

    private static InteractionLog ReadAtomic(Context ctx)
    {
        var header = ctx.Next() ?? throw ctx.Error("expected a header line such as \"user_id:token<TAB>item_id:token<TAB>timestamp:float\", the file is empty");
        var columns = header.Split('\t');
        var names = new string[columns.Length];
        var types = new string[columns.Length];
        for (int i = 0; i < columns.Length; i++)
        {
            var c = columns[i].Trim();
            int colon = c.LastIndexOf(':');
            if (colon <= 0 || !AtomicTypes.Contains(c[(colon + 1)..]))
                throw ctx.Error($"expected header field {i + 1} as name:type with type one of {string.Join(", ", AtomicTypes)}, found \"{c}\"");
            names[i] = c[..colon];
            types[i] = c[(colon + 1)..];
        }
        string userName = ctx.Options.UserField ?? "user_id", itemName = ctx.Options.ItemField ?? "item_id";
        string? timeName = ctx.Options.TimeField ?? "timestamp";
        int Find(string name, string role, string type, bool required)
        {
            int at = Array.IndexOf(names, name);
            if (at < 0)
            {
                if (required) throw ctx.Error($"expected a {role} column \"{name}:{type}\" in the header, found {string.Join(", ", columns)}");
                return -1;
            }
            if (types[at] != type) throw ctx.Error($"expected the {role} column \"{name}\" to have type {type}, found {types[at]}");
            return at;
        }
        int ui = Find(userName, "user", "token", true), ii = Find(itemName, "item", "token", true);
        // An explicitly named time column must exist; the default "timestamp" may be absent (file order).
        int ti = timeName.Length == 0 ? -1 : Find(timeName, "time", "float", ctx.Options.TimeField is { Length: > 0 });

        var builder = new InteractionLogBuilder(ctx.Source, hasTimestamps: ti >= 0);
        long order = 0;
        for (var line = ctx.Next(); line is not null; line = ctx.Next())
        {
            var f = line.Split('\t');
            if (f.Length != columns.Length)
            {
                ctx.Bad(builder, $"expected {columns.Length} tab-separated fields as the header ({string.Join(", ", names)}), found {f.Length} in {Show(line)}");
                continue;
            }
            string user = f[ui].Trim(), item = f[ii].Trim();
            if (user.Length == 0 || item.Length == 0)
            {
                ctx.Bad(builder, $"expected non-empty {names[ui]} and {names[ii]}, found {Show(line)}");
                continue;
            }
            double time = order++;
            if (ti >= 0 && !TryNumber(f[ti].Trim(), out time))
            {
                ctx.Bad(builder, $"expected a number in {names[ti]}:float (field {ti + 1}), found \"{f[ti]}\"");
                continue;
            }
            builder.Add(user, item, time, ctx.LineNumber);
        }
        return builder.Build();
    }

    // ---- csv ----
    private static readonly string[] UserCandidates = ["user_id", "userid", "user", "uid", "user_id:token", "visitorid", "customer_id", "reviewerid"];
    private static readonly string[] ItemCandidates = ["item_id", "itemid", "item", "iid", "item_id:token", "movie_id", "movieid", "product_id", "productid", "asin"];
    private static readonly string[] TimeCandidates = ["timestamp", "time", "ts", "unix_time", "unixtime", "timestamp:float", "datetime", "date", "unixreviewtime"];

    private static InteractionLog ReadCsv(Context ctx)
    {
        char sep = ctx.Options.CsvDelimiter;
        var headerLine = ctx.Next() ?? throw ctx.Error("expected a header line naming the user, item and timestamp columns, the file is empty");
        var header = SplitCsv(headerLine, sep, out var headerError);
        if (headerError is not null) throw ctx.Error($"header: {headerError}");
        var cols = header.Select(h => h.Trim()).ToArray();
        int Find(string? named, string[] candidates, string role, bool required)
        {
            if (named is not null)
            {
                int at = Array.FindIndex(cols, c => string.Equals(c, named, StringComparison.OrdinalIgnoreCase));
                if (at < 0) throw ctx.Error($"expected a {role} column named \"{named}\" in the header, found {string.Join(", ", cols)}");
                return at;
            }
            foreach (var cand in candidates)
            {
                int at = Array.FindIndex(cols, c => string.Equals(c, cand, StringComparison.OrdinalIgnoreCase));
                if (at >= 0) return at;
            }
            if (required)
                throw ctx.Error($"expected a {role} column (one of {string.Join(", ", candidates)}, or name it) in the header, found {string.Join(", ", cols)}");
            return -1;
        }
        int ui = Find(ctx.Options.UserField, UserCandidates, "user", true);
        int ii = Find(ctx.Options.ItemField, ItemCandidates, "item", true);
        int ti = ctx.Options.TimeField is { Length: 0 } ? -1 : Find(ctx.Options.TimeField, TimeCandidates, "timestamp", true);

        var builder = new InteractionLogBuilder(ctx.Source, hasTimestamps: ti >= 0);
        long order = 0;
        for (var line = ctx.Next(); line is not null; line = ctx.Next())
        {
            var f = SplitCsv(line, sep, out var error);
            if (error is not null)
            {
                ctx.Bad(builder, error);
                continue;
            }
            if (f.Count != cols.Length)
            {
                ctx.Bad(builder, $"expected {cols.Length} fields as the header ({string.Join(", ", cols)}), found {f.Count} in {Show(line)}");
                continue;
            }
            string user = f[ui].Trim(), item = f[ii].Trim();
            if (user.Length == 0 || item.Length == 0)
            {
                ctx.Bad(builder, $"expected non-empty {cols[ui]} and {cols[ii]}, found {Show(line)}");
                continue;
            }
            double time = order++;
            if (ti >= 0 && !TryTime(f[ti].Trim(), out time))
            {
                ctx.Bad(builder, $"expected a timestamp in column {cols[ti]} (a number, or an ISO 8601 date/time), found \"{f[ti]}\"");
                continue;
            }
            builder.Add(user, item, time, ctx.LineNumber);
        }
        return builder.Build();
    }

    private static bool TryTime(string s, out double seconds)
    {
        if (TryNumber(s, out seconds)) return true;
        if (DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var dt))
        {
            seconds = dt.ToUnixTimeMilliseconds() / 1000.0;
            return true;
        }
        return false;
    }

    /// <summary>Splits one CSV record (RFC 4180 quoting: "a,b" and "" for a quote inside quotes); error says what is wrong.</summary>
    internal static List<string> SplitCsv(string line, char sep, out string? error)
    {
        var fields = CsvLine.Split(line, sep, out var e);
        error = e is null ? null
            : e.Unterminated ? $"unterminated quoted field starting at column {e.Column}"
            : $"unexpected character '{e.Found}' after the closing quote at column {e.Column}";
        return fields;
    }

    // ---- seq: user item item ... ----
    private static readonly char[] Whitespace = [' ', '\t'];

    private static InteractionLog ReadSeq(Context ctx)
    {
        var builder = new InteractionLogBuilder(ctx.Source, hasTimestamps: false);
        long order = 0;
        for (var line = ctx.Next(); line is not null; line = ctx.Next())
        {
            var f = line.Split(Whitespace, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2)
            {
                ctx.Bad(builder, $"expected a user id followed by at least one item id (\"user item item ...\"), found {Show(line)}");
                continue;
            }
            for (int k = 1; k < f.Length; k++) builder.Add(f[0], f[k], order++, ctx.LineNumber);
        }
        return builder.Build();
    }

    // ---- pairs: user item ----
    private static InteractionLog ReadPairs(Context ctx)
    {
        var builder = new InteractionLogBuilder(ctx.Source, hasTimestamps: false);
        long order = 0;
        for (var line = ctx.Next(); line is not null; line = ctx.Next())
        {
            var f = line.Split(Whitespace, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 2)
            {
                ctx.Bad(builder, $"expected exactly two fields \"user item\", found {f.Length} in {Show(line)}");
                continue;
            }
            builder.Add(f[0], f[1], order++, ctx.LineNumber);
        }
        return builder.Build();
    }
}
