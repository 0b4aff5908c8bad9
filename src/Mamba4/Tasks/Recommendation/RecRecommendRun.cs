using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Models;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// `mamba4 rec recommend`: the top items after one user's history (Mamba4Rec through its recurrent step), ranked lines
/// on the output; or, in batch mode, the top items of every user of a histories file, stepped together, as TSV rows
/// (`user, rank, item, score`) or one JSON object per user. Status lines go to the log.
/// </summary>
public static class RecRecommendRun
{
    public static void Run(RecRecommendSettings s, TextWriter output, TextWriter log)
    {
        s.Validate();
        using var model = RecModels.Load(s.Checkpoint, s.Kind, options: s.Load with { Device = s.Device });
        if (s.Histories is { } file) RecommendBatch(s, model, file, output, log);
        else RecommendOne(s, model, output, log);
    }

    private static void RecommendOne(RecRecommendSettings s, RecModel model, TextWriter output, TextWriter log)
    {
        var h = s.User is { } user ? UserHistory(s, model, user, log) : RecRecommend.ParseHistory(s.History!, model, s.Ids);
        var scores = RecRecommend.RecurrentScores(model, h);
        var best = RecRecommend.TopK(scores, s.Top, s.ExcludeHistory ? h.ToHashSet() : null);
        log.WriteLine($"{model.Kind}: top {best.Length} after {h.Length} item(s){(model.Model is Mamba4Rec ? " (recurrent step)" : "")}");
        for (int r = 0; r < best.Length; r++)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r + 1,3}. {model.ItemToken(best[r])}  (id {best[r]}, score {scores[best[r]]:F5})"));
        if (s.Json) output.WriteLine(TopJson(new JsonObject(), model, best, best.Select(i => scores[i])).ToJsonString());
    }

    /// <summary>The user's whole history in the data file, in the model's item ids (items it does not know dropped), cut to max_len.</summary>
    private static long[] UserHistory(RecRecommendSettings s, RecModel model, string user, TextWriter log)
    {
        var raw = s.Data.Load(log);
        int uid = raw.UserId(user) ?? throw new ArgumentException($"--user: '{user}' is not a user of {raw.Source} (after the {s.Data.MinUserInteractions}-core filter)");
        var data = RecData.ToModelIds(raw, model, out _);
        var h = data.Sequences[uid].Select(x => (long)x).ToArray();
        if (h.Length == 0) throw new ArgumentException($"--user: none of '{user}''s items is known to the model");
        return h.Length > model.MaxLen ? h[^model.MaxLen..] : h;
    }

    private static void RecommendBatch(RecRecommendSettings s, RecModel model, string file, TextWriter output, TextWriter log)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"--histories: {file} not found", file);
        var users = RecRecommend.ReadHistories(file, model, s.Ids, s.Data.SkipBadLines, out int bad, out var badMessages, out int unknown);
        if (unknown > 0) log.WriteLine($"{unknown:N0} item(s) the model does not know were dropped from the histories");
        if (bad > 0)
        {
            log.WriteLine($"skipped {bad:N0} malformed line(s) of {file}");
            foreach (var m in badMessages) log.WriteLine("  " + m);
        }
        var sw = Stopwatch.StartNew();
        var top = RecRecommend.Recommend(model, users.Select(u => u.History).ToArray(), s.Top, s.ExcludeHistory, s.BatchUsers);
        for (int u = 0; u < users.Count; u++)
        {
            var (best, scores) = top[u];
            if (s.Json)
                output.WriteLine(TopJson(new JsonObject { ["user"] = users[u].User }, model, best, scores).ToJsonString());
            else
                for (int r = 0; r < best.Length; r++)
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{users[u].User}\t{r + 1}\t{model.ItemToken(best[r])}\t{scores[r].ToString("R", CultureInfo.InvariantCulture)}"));
        }
        log.WriteLine($"{model.Kind}: top {s.Top} for {users.Count:N0} user(s) of {file} in {sw.Elapsed.TotalSeconds:F2} s" +
                      $"{(model.Model is Mamba4Rec ? " (recurrent step, users stepped together)" : "")}");
    }

    /// <summary>Adds the recommended items (original tokens), their ids and scores, best first, to <paramref name="o"/>.</summary>
    private static JsonObject TopJson(JsonObject o, RecModel model, int[] best, IEnumerable<float> scores)
    {
        o["items"] = new JsonArray(best.Select(i => (JsonNode?)model.ItemToken(i)).ToArray());
        o["ids"] = new JsonArray(best.Select(i => (JsonNode?)i).ToArray());
        o["scores"] = new JsonArray(scores.Select(x => (JsonNode?)x).ToArray());
        return o;
    }
}
