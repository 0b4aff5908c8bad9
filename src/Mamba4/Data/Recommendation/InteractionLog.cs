namespace Mamba4.Data.Recommendation;

/// <summary>
/// Raw interactions as read from a file, in file order: user and item tokens (interned to indices into
/// <see cref="UserTokens"/> / <see cref="ItemTokens"/>), a timestamp and the source line of each.
/// Formats without a time column (seq, pairs, an atomic file without one) use the position in the file as time,
/// which is the order those formats promise.
/// </summary>
public sealed class InteractionLog
{
    internal InteractionLog(string source, List<string> userTokens, List<string> itemTokens, List<int> users, List<int> items,
        List<double> times, List<int> lines, bool hasTimestamps, int badLines, List<string> badLineMessages)
    {
        Source = source;
        UserTokens = userTokens;
        ItemTokens = itemTokens;
        Users = users.ToArray();
        Items = items.ToArray();
        Timestamps = times.ToArray();
        Lines = lines.ToArray();
        HasTimestamps = hasTimestamps;
        BadLines = badLines;
        BadLineMessages = badLineMessages;
    }

    /// <summary>The file (or generator) the interactions came from, for messages.</summary>
    public string Source { get; }
    public IReadOnlyList<string> UserTokens { get; }
    public IReadOnlyList<string> ItemTokens { get; }
    /// <summary>Per interaction: index into <see cref="UserTokens"/>.</summary>
    public int[] Users { get; }
    /// <summary>Per interaction: index into <see cref="ItemTokens"/>.</summary>
    public int[] Items { get; }
    public double[] Timestamps { get; }
    /// <summary>Per interaction: the 1-based line of the source it was read from (0 for generated data).</summary>
    public int[] Lines { get; }
    /// <summary>False when the times are positions in the file (seq, pairs, atomic without a time column).</summary>
    public bool HasTimestamps { get; }
    public int Count => Users.Length;
    /// <summary>Malformed lines skipped (only with <see cref="RecReadOptions.SkipBadLines"/>).</summary>
    public int BadLines { get; }
    /// <summary>"file:line: what was wrong" for the first <see cref="RecReadOptions.MaxReportedBadLines"/> skipped lines.</summary>
    public IReadOnlyList<string> BadLineMessages { get; }
}

/// <summary>Collects interactions, interning tokens in order of first appearance.</summary>
public sealed class InteractionLogBuilder(string source, bool hasTimestamps)
{
    private readonly Dictionary<string, int> _userIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _itemIndex = new(StringComparer.Ordinal);
    private readonly List<string> _userTokens = new(), _itemTokens = new();
    private readonly List<int> _users = new(), _items = new(), _lines = new();
    private readonly List<double> _times = new();
    private readonly List<string> _badMessages = new();
    private int _badLines;

    public string Source { get; } = source;
    public int Count => _users.Count;

    public void Add(string user, string item, double timestamp, int line)
    {
        _users.Add(Intern(_userIndex, _userTokens, user));
        _items.Add(Intern(_itemIndex, _itemTokens, item));
        _times.Add(timestamp);
        _lines.Add(line);
    }

    internal void AddBadLine(string message, int maxReported)
    {
        _badLines++;
        if (_badMessages.Count < maxReported) _badMessages.Add(message);
    }

    private static int Intern(Dictionary<string, int> index, List<string> tokens, string token)
    {
        if (!index.TryGetValue(token, out var id))
        {
            id = tokens.Count;
            index.Add(token, id);
            tokens.Add(token);
        }
        return id;
    }

    public InteractionLog Build() =>
        new(Source, _userTokens, _itemTokens, _users, _items, _times, _lines, hasTimestamps, _badLines, _badMessages);
}
