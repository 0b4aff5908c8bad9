using System.Globalization;

namespace Mamba4.Evaluation;

/// <summary>One group of a breakdown: its key range as a label ("4–5", "≥51"), its users, their metrics at cutoff K.</summary>
public sealed record RankingGroup(string Label, int Count, double Hit, double Ndcg, double Mrr);

/// <summary>
/// Ranking metrics split by a per-user key (history length, the target's popularity, …), to see where two models
/// differ: the same Hit/NDCG/MRR@K as <see cref="RankingMetrics"/>, averaged within each group of keys.
/// </summary>
public static class RankingBreakdown
{
    /// <summary>
    /// Groups by <paramref name="keys"/>[i] into [edges[j], edges[j+1] − 1] (edges ascending; the last group is open: ≥ the
    /// last edge; keys below edges[0] are not counted). Empty groups are kept (Count 0, metrics NaN).
    /// </summary>
    public static RankingGroup[] ByKey(IReadOnlyList<int> ranks, IReadOnlyList<long> keys, IReadOnlyList<long> edges, int k = 10)
    {
        if (ranks.Count != keys.Count) throw new ArgumentException($"breakdown: {ranks.Count} ranks for {keys.Count} keys");
        if (edges.Count == 0) throw new ArgumentException("breakdown: at least one edge is needed");
        for (int j = 1; j < edges.Count; j++)
            if (edges[j] <= edges[j - 1]) throw new ArgumentException($"breakdown: edges must ascend, got {edges[j - 1]} then {edges[j]}");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "cutoff must be positive");
        int g = edges.Count;
        var members = Enumerable.Range(0, g).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < ranks.Count; i++)
        {
            int j = Group(keys[i], edges);
            if (j >= 0) members[j].Add(ranks[i]);
        }
        var groups = new RankingGroup[g];
        for (int j = 0; j < g; j++)
        {
            string label = j == g - 1 ? string.Create(CultureInfo.InvariantCulture, $"≥{edges[j]}")
                : edges[j + 1] - 1 == edges[j] ? edges[j].ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"{edges[j]}–{edges[j + 1] - 1}");
            if (members[j].Count == 0) { groups[j] = new RankingGroup(label, 0, double.NaN, double.NaN, double.NaN); continue; }
            var m = RankingAccumulator.Of(members[j], [k]);
            groups[j] = new RankingGroup(label, members[j].Count, m[RankingMetrics.Name("hit", k)], m[RankingMetrics.Name("ndcg", k)], m[RankingMetrics.Name("mrr", k)]);
        }
        return groups;
    }

    private static int Group(long key, IReadOnlyList<long> edges)
    {
        if (key < edges[0]) return -1;
        int j = 0;
        while (j + 1 < edges.Count && key >= edges[j + 1]) j++;
        return j;
    }
}
