using System.Globalization;

namespace Mamba4.Data.Recommendation;

/// <summary>Counts of a dataset (users and items exclude the padding item 0).</summary>
public sealed record DatasetStatistics(int Users, int Items, long Interactions, int MinLength, int MaxLength, double MedianLength)
{
    /// <summary>interactions / (users · items).</summary>
    public double Density => Users == 0 || Items == 0 ? 0 : (double)Interactions / ((double)Users * Items);
    /// <summary>Average interactions per user.</summary>
    public double AverageLength => Users == 0 ? 0 : (double)Interactions / Users;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"users {Users:N0}, items {Items:N0}, interactions {Interactions:N0}, density {Density:P3}, " +
        $"average length {AverageLength:F2} (min {MinLength}, median {MedianLength:0.#}, max {MaxLength})");

    public static DatasetStatistics Of(IReadOnlyList<int[]> sequences, int items)
    {
        if (sequences.Count == 0) return new DatasetStatistics(0, items, 0, 0, 0, 0);
        var lens = sequences.Select(s => s.Length).OrderBy(x => x).ToArray();
        int n = lens.Length;
        double median = n % 2 == 1 ? lens[n / 2] : (lens[n / 2 - 1] + lens[n / 2]) / 2.0;
        return new DatasetStatistics(n, items, lens.Sum(x => (long)x), lens[0], lens[^1], median);
    }
}

/// <summary>
/// k-core filtering as RecBole's <c>_filter_by_inter_num</c> does it: each round counts the interactions of every
/// user and item that is still present, bans at once every user with fewer than <c>minUser</c> and every item with
/// fewer than <c>minItem</c>, and drops every interaction of a banned user or item; rounds repeat until a round
/// bans nothing (a fixed point: every remaining user and item has enough). Duplicate (user, item) rows count
/// separately, as in RecBole without <c>rm_dup_inter</c>.
/// </summary>
public static class KCoreFilter
{
    /// <summary>Which interactions survive; <paramref name="rounds"/> is the number of rounds that removed something.</summary>
    public static bool[] Apply(ReadOnlySpan<int> users, ReadOnlySpan<int> items, int minUser, int minItem, out int rounds)
    {
        if (users.Length != items.Length) throw new ArgumentException("users and items must have the same length");
        int n = users.Length;
        var keep = new bool[n];
        Array.Fill(keep, true);
        int userCount = 0, itemCount = 0;
        for (int i = 0; i < n; i++)
        {
            if (users[i] < 0 || items[i] < 0) throw new ArgumentOutOfRangeException(nameof(users), "ids must be non-negative");
            userCount = Math.Max(userCount, users[i] + 1);
            itemCount = Math.Max(itemCount, items[i] + 1);
        }
        var uc = new int[userCount];
        var ic = new int[itemCount];
        rounds = 0;
        while (true)
        {
            Array.Clear(uc);
            Array.Clear(ic);
            for (int i = 0; i < n; i++)
                if (keep[i]) { uc[users[i]]++; ic[items[i]]++; }
            bool any = false;
            for (int i = 0; i < n && !any; i++)
                if (keep[i] && (uc[users[i]] < minUser || ic[items[i]] < minItem)) any = true;
            if (!any) return keep;
            for (int i = 0; i < n; i++)
                if (keep[i] && (uc[users[i]] < minUser || ic[items[i]] < minItem)) keep[i] = false;
            rounds++;
        }
    }
}

/// <summary>
/// Per-user item sequences in time order, ids remapped: users 0..U−1, items 1..NItems−1 with 0 the padding item.
/// Built from raw interactions as RecBole builds a sequential dataset: k-core filter (<see cref="KCoreFilter"/>), ids
/// remapped in order of first appearance in the file (pandas.factorize, as RecBole's _remap), then each user's
/// interactions sorted by timestamp with a stable sort (equal timestamps keep their file order, as RecBole's
/// Interaction.sort with kind="stable").
/// </summary>
public sealed class SequenceDataset
{
    public const string PaddingToken = "[PAD]";

    private Dictionary<string, int>? _userIds, _itemIds;

    private SequenceDataset(string source, string[] userTokens, string[] itemTokens, int[][] sequences, int filterRounds, long removed)
    {
        Source = source;
        UserTokens = userTokens;
        ItemTokens = itemTokens;
        Sequences = sequences;
        FilterRounds = filterRounds;
        RemovedInteractions = removed;
        Statistics = DatasetStatistics.Of(sequences, itemTokens.Length - 1);
    }

    public string Source { get; }
    /// <summary>Original user token of each user id.</summary>
    public IReadOnlyList<string> UserTokens { get; }
    /// <summary>Original item token of each item id; [0] is <see cref="PaddingToken"/>.</summary>
    public IReadOnlyList<string> ItemTokens { get; }
    /// <summary>Each user's item ids in time order.</summary>
    public IReadOnlyList<int[]> Sequences { get; }
    public int UserCount => Sequences.Count;
    /// <summary>Number of item ids including the padding item 0 (RecBole's item_num; the rows of item_embedding).</summary>
    public int NItems => ItemTokens.Count;
    public long InteractionCount => Statistics.Interactions;
    /// <summary>Filter rounds that removed something (0 when the data was already a k-core).</summary>
    public int FilterRounds { get; }
    public long RemovedInteractions { get; }
    public DatasetStatistics Statistics { get; }

    public int? UserId(string token)
    {
        _userIds ??= Index(UserTokens, 0);
        return _userIds.TryGetValue(token, out var id) ? id : null;
    }

    public int? ItemId(string token)
    {
        _itemIds ??= Index(ItemTokens, 1);
        return _itemIds.TryGetValue(token, out var id) ? id : null;
    }

    /// <summary>token → its position in <paramref name="tokens"/>, from <paramref name="start"/> on.</summary>
    internal static Dictionary<string, int> Index(IReadOnlyList<string> tokens, int start)
    {
        var d = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (int i = start; i < tokens.Count; i++) d[tokens[i]] = i;
        return d;
    }

    /// <summary>Filters (users and items with fewer than the minimum interactions removed), remaps and sorts.</summary>
    public static SequenceDataset Build(InteractionLog log, int minUserInteractions = 5, int minItemInteractions = 5)
    {
        var keep = KCoreFilter.Apply(log.Users, log.Items, minUserInteractions, minItemInteractions, out int rounds);
        int n = log.Count;
        // Remap in order of first appearance among the kept rows (file order).
        var userMap = new int[log.UserTokens.Count];
        var itemMap = new int[log.ItemTokens.Count];
        Array.Fill(userMap, -1);
        Array.Fill(itemMap, -1);
        var userTokens = new List<string>();
        var itemTokens = new List<string> { PaddingToken };
        var perUser = new List<List<int>>();
        for (int i = 0; i < n; i++)
        {
            if (!keep[i]) continue;
            int u = log.Users[i], it = log.Items[i];
            if (userMap[u] < 0)
            {
                userMap[u] = userTokens.Count;
                userTokens.Add(log.UserTokens[u]);
                perUser.Add(new List<int>());
            }
            if (itemMap[it] < 0)
            {
                itemMap[it] = itemTokens.Count;
                itemTokens.Add(log.ItemTokens[it]);
            }
            perUser[userMap[u]].Add(i);
        }
        if (userTokens.Count == 0)
            throw new InvalidDataException($"{log.Source}: no interactions left after removing users with fewer than {minUserInteractions} " +
                                           $"and items with fewer than {minItemInteractions} interactions ({n:N0} read)");
        var times = log.Timestamps;
        var sequences = new int[perUser.Count][];
        for (int u = 0; u < perUser.Count; u++)
        {
            var rows = perUser[u].ToArray();                 // already in file order
            // Stable by time: ties broken by the file position.
            Array.Sort(rows, (a, b) => times[a] != times[b] ? times[a].CompareTo(times[b]) : a.CompareTo(b));
            var seq = new int[rows.Length];
            for (int k = 0; k < rows.Length; k++) seq[k] = itemMap[log.Items[rows[k]]];
            sequences[u] = seq;
        }
        long removed = n - sequences.Sum(s => (long)s.Length);
        return new SequenceDataset(log.Source, userTokens.ToArray(), itemTokens.ToArray(), sequences, rounds, removed);
    }

    /// <summary>A dataset from sequences of item ids already in 1..nItems−1 (tests, generated data); no filtering.</summary>
    public static SequenceDataset FromSequences(IReadOnlyList<int[]> sequences, int nItems, string source = "sequences",
        IReadOnlyList<string>? userTokens = null, IReadOnlyList<string>? itemTokens = null)
    {
        if (userTokens is not null && userTokens.Count != sequences.Count)
            throw new ArgumentException($"{source}: {userTokens.Count} user tokens for {sequences.Count} sequences");
        if (itemTokens is not null && itemTokens.Count != nItems)
            throw new ArgumentException($"{source}: {itemTokens.Count} item tokens for {nItems} items");
        for (int u = 0; u < sequences.Count; u++)
            foreach (var it in sequences[u])
                if (it < 1 || it >= nItems)
                    throw new ArgumentOutOfRangeException(nameof(sequences), $"{source}: user {u} has item {it} outside [1, {nItems})");
        var users = userTokens?.ToArray() ?? Enumerable.Range(0, sequences.Count).Select(u => u.ToString(CultureInfo.InvariantCulture)).ToArray();
        var items = itemTokens?.ToArray() ?? Enumerable.Range(0, nItems).Select(i => i == 0 ? PaddingToken : i.ToString(CultureInfo.InvariantCulture)).ToArray();
        return new SequenceDataset(source, users, items, sequences.Select(s => s.ToArray()).ToArray(), 0, 0);
    }
}
