using System.Globalization;
using Mamba4.Data.Recommendation;
using Mamba4.Evaluation;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// `mamba4 rec eval`: a saved model on a dataset split leave-one-out as in training — test (and validation) metrics on
/// the output, optionally broken down by the test users' histories and targets, or each test user's rank as TSV.
/// </summary>
public static class RecEvalRun
{
    /// <summary>Group edges of the breakdown tables: history length, the target's training interactions, and how often the target is already in the history.</summary>
    private static readonly long[] HistoryLengthEdges = [1, 2, 4, 6, 9, 16, 31, 51];
    private static readonly long[] PopularityEdges = [0, 1, 5, 10, 20, 50, 100, 200, 500];
    private static readonly long[] RepeatEdges = [0, 1];

    public static RecEvalResult Run(RecEvalSettings s, TextWriter output, TextWriter log)
    {
        s.Validate();
        using var model = RecModels.Load(s.Checkpoint, s.Kind, options: s.Load with { Device = s.Device });
        var data = RecData.ToModelIds(s.Data.Load(log), model, out int unknown);
        if (unknown > 0) log.WriteLine($"{unknown:N0} interaction(s) with items the model does not know were dropped");
        int len = s.MaxLen ?? model.MaxLen;
        var split = LeaveOneOutSplit.Create(data);
        if (split.Test.Length == 0) throw new InvalidDataException($"{data.Source}: no user has a test sample");
        var testRanks = RecExperiment.Ranks(model.Model, data, split.Test, len, s.EvalBatch);
        var test = RankingAccumulator.Of(testRanks);
        var valid = split.Valid.Length > 0 ? RecExperiment.Evaluate(model.Model, data, split.Valid, len, s.EvalBatch) : new Dictionary<string, double>();
        output.WriteLine($"{model.Kind}: {split.Test.Length:N0} test users, max_len {len}");
        output.WriteLine("test   " + string.Join("  ", test.Select(kv => $"{kv.Key} {kv.Value:F4}")));
        if (valid.Count > 0) output.WriteLine("valid  " + string.Join("  ", valid.Select(kv => $"{kv.Key} {kv.Value:F4}")));
        if (s.Breakdown || s.RanksFile is not null) WriteBreakdown(split, testRanks, len, s.Breakdown, s.RanksFile, output);
        return new RecEvalResult(model.Kind, split.Test.Length, len, test, valid);
    }

    /// <summary>
    /// Test metrics by the user's history length (items before the target), by the target's count in the training parts
    /// of all sequences, and by how often the target occurs in the last max_len items of the history; or each rank as TSV.
    /// </summary>
    private static void WriteBreakdown(LeaveOneOutSplit split, int[] ranks, int maxLen, bool print, string? ranksPath, TextWriter output)
    {
        var data = split.Data;
        var trainCount = new long[data.NItems];
        for (int u = 0; u < data.UserCount; u++)
            foreach (int item in data.Sequences[u].AsSpan(0, split.TrainLength(u))) trainCount[item]++;
        int n = split.Test.Length;
        long[] length = new long[n], popularity = new long[n], repeats = new long[n];
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            var s = split.Test[i];
            var history = split.History(s);
            int target = targets[i] = data.Sequences[s.User][s.End];
            length[i] = history.Length;
            popularity[i] = trainCount[target];
            foreach (int item in history[Math.Max(0, history.Length - maxLen)..]) if (item == target) repeats[i]++;
        }
        if (print)
        {
            Table("history length", length, HistoryLengthEdges);
            Table("target's training interactions", popularity, PopularityEdges);
            Table("target already in the history (times)", repeats, RepeatEdges);
        }
        if (ranksPath is not null)
        {
            using (var w = new StreamWriter(ranksPath))
            {
                w.WriteLine("user\thistory_length\ttarget\ttarget_train_count\trank");
                for (int i = 0; i < n; i++)
                    w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{data.UserTokens[split.Test[i].User]}\t{length[i]}\t{data.ItemTokens[targets[i]]}\t{popularity[i]}\t{ranks[i]}"));
            }
            output.WriteLine($"ranks of {n:N0} test users written to {ranksPath}");
        }

        void Table(string title, long[] keys, long[] edges)
        {
            output.WriteLine($"test by {title}:");
            output.WriteLine($"  {"group",-10} {"users",8} {"share",7} {"hit@10",8} {"ndcg@10",8} {"mrr@10",8}");
            foreach (var g in RankingBreakdown.ByKey(ranks, keys, edges))
                output.WriteLine(g.Count == 0 ? string.Create(CultureInfo.InvariantCulture, $"  {g.Label,-10} {0,8} {0.0,6:F1}% {"-",8} {"-",8} {"-",8}")
                    : string.Create(CultureInfo.InvariantCulture, $"  {g.Label,-10} {g.Count,8:N0} {100.0 * g.Count / Math.Max(1, n),6:F1}% {g.Hit,8:F4} {g.Ndcg,8:F4} {g.Mrr,8:F4}"));
        }
    }
}
