using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;
using static Mamba4.Tests.CliTests;

namespace Mamba4.Tests;

/// <summary>`mamba4 rec` as a user runs it: train/eval/score/recommend, resume, bad input; and the two objectives.</summary>
public class RecCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-rec-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A small synthetic log written as `user item` pairs (SASRec style).</summary>
    private string TinyData()
    {
        var path = Path.Combine(_dir, "tiny.txt");
        var log = SyntheticRecData.Generate(new SyntheticRecOptions
        {
            Users = 120, Items = 40, MinLength = 6, MaxLength = 14, Clusters = 4, Successors = 1, FollowProbability = 0.8, PreferenceProbability = 0.1, Seed = 3,
        });
        File.WriteAllLines(path, Enumerable.Range(0, log.Count).Select(i => $"{log.UserTokens[log.Users[i]]} {log.ItemTokens[log.Items[i]]}"));
        return path;
    }

    private static readonly string[] Tiny = ["--format", "pairs", "--hidden", "16", "--d-state", "8", "--batch", "256", "--max-len", "12"];


    [Fact]
    public void TrainPrintsTestMetricsUnderRecBoleNamesAndSavesAModelThatEvalAndRecommendLoad()
    {
        var data = TinyData();
        var outDir = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = CliTests.Run(["rec", "train", "--data", data, .. Tiny, "--epochs", "2", "--out", outDir, "--json"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("users 120", stderr);                       // dataset statistics
        Assert.Contains("epoch 2/2", stderr);                       // per-epoch progress
        var r = LastJson(stdout);
        foreach (var k in new[] { "hit@5", "ndcg@5", "mrr@5", "hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20", "mrr@20" })
            Assert.InRange(r[k]!.GetValue<double>(), 0, 1);
        Assert.Equal(2, r["epochs"]!.GetValue<int>());
        Assert.True(r["seconds_per_epoch"]!.GetValue<double>() > 0);
        Assert.True(r["peak_memory_bytes"]!.GetValue<long>() > 0);
        var model = Path.Combine(outDir, "model");
        Assert.Equal("mamba4rec", JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!["model"]!.GetValue<string>());
        Assert.True(SafetensorsFile.LoadAll(Path.Combine(model, "model.safetensors")).ContainsKey("item_embedding.weight"));
        Assert.True(File.Exists(Path.Combine(model, RecModels.TokensFile)));
        // run.json: what defines the run, and the engine settings and device it ran under.
        var run = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "run.json")))!;
        Assert.Equal("all-positions", run["objective"]!.GetValue<string>());
        Assert.Equal(2, run["epochs"]!.GetValue<int>());
        Assert.Equal(0, run["weight_decay"]!.GetValue<double>());
        Assert.Equal(5, run["min_user_interactions"]!.GetValue<int>());
        Assert.Equal("cpu", run["numerics"]!["device"]!.GetValue<string>());

        // eval of the saved model on the same file reproduces the test metrics of training.
        var (ecode, eout, eerr) = CliTests.Run("rec", "eval", "--checkpoint", model, "--data", data, "--format", "pairs", "--json");
        Assert.True(ecode == 0, eerr);
        Assert.Equal(r["ndcg@10"]!.GetValue<double>(), LastJson(eout)["ndcg@10"]!.GetValue<double>(), 6);

        // recommend for a user of the file: original item tokens come back.
        var (rcode, rout, rerr) = CliTests.Run("rec", "recommend", "--checkpoint", model, "--data", data, "--format", "pairs", "--user", "u7", "--top", "5", "--json");
        Assert.True(rcode == 0, rerr);
        var items = LastJson(rout)["items"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray();
        Assert.Equal(5, items.Length);
        Assert.All(items, i => Assert.StartsWith("i", i));
    }

    /// <summary>--mixer mamba2: Mamba4Rec's layer with the SSD mixer; the saved config names it, so eval reloads the same model.</summary>
    [Fact]
    public void TrainWithTheMamba2MixerSavesAModelThatEvalAndRecommendReload()
    {
        var data = TinyData();
        var outDir = Path.Combine(_dir, "m2");
        var (code, stdout, stderr) = CliTests.Run(["rec", "train", "--data", data, .. Tiny, "--epochs", "1", "--mixer", "mamba2", "--layers", "2", "--out", outDir, "--json"]);
        Assert.True(code == 0, stderr);
        var model = Path.Combine(outDir, "model");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!;
        Assert.Equal(("mamba2", 8), (config["mixer"]!.GetValue<string>(), config["head_dim"]!.GetValue<int>()));   // 32 channels: 4 heads of 8
        Assert.True(SafetensorsFile.LoadAll(Path.Combine(model, "model.safetensors")).ContainsKey("mamba_layers.1.mamba.norm.weight"));
        var (ecode, eout, eerr) = CliTests.Run("rec", "eval", "--checkpoint", model, "--data", data, "--format", "pairs", "--json");
        Assert.True(ecode == 0, eerr);
        Assert.Equal(LastJson(stdout)["ndcg@10"]!.GetValue<double>(), LastJson(eout)["ndcg@10"]!.GetValue<double>(), 6);
        var (rcode, rout, rerr) = CliTests.Run("rec", "recommend", "--checkpoint", model, "--data", data, "--format", "pairs", "--user", "u7", "--top", "5", "--json");
        Assert.True(rcode == 0, rerr);
        Assert.Equal(5, LastJson(rout)["items"]!.AsArray().Count);
        (code, _, stderr) = CliTests.Run(["rec", "train", "--data", data, .. Tiny, "--model", "sasrec", "--mixer", "mamba2"]);
        Assert.Equal("error: --mixer and --head-dim apply to mamba4rec only, not sasrec", stderr.Trim());
    }

    /// <summary>
    /// --model bert4rec: trains (cloze), stops mid-epoch and resumes to the same weights (the masks are seeded by seed,
    /// epoch and batch), and the saved model reloads in eval (same metrics), recommend and score (the library's scores).
    /// </summary>
    [Fact]
    public void Bert4RecTrainsResumesExactlyAndEvalRecommendScoreReloadIt()
    {
        var data = TinyData();
        string a = Path.Combine(_dir, "ba"), b = Path.Combine(_dir, "bb");
        string[] args = ["rec", "train", "--data", data, .. Tiny, "--model", "bert4rec", "--epochs", "2", "--json"];
        var (code, stdout, stderr) = CliTests.Run([.. args, "--out", a]);
        Assert.True(code == 0, stderr);
        var (cb, _, eb) = CliTests.Run([.. args, "--out", b, "--stop-after", "1"]);
        Assert.True(cb == 130, eb);
        var (cr, or, er) = CliTests.Run([.. args, "--out", b, "--resume"]);
        Assert.True(cr == 0, er);
        var model = Path.Combine(a, "model");
        var wa = SafetensorsFile.LoadAll(Path.Combine(model, "model.safetensors"));
        var wb = SafetensorsFile.LoadAll(Path.Combine(b, "model", "model.safetensors"));
        Assert.Contains("output_bias", wa.Keys);
        Assert.Contains("trm_encoder.layer.1.feed_forward.dense_2.weight", wa.Keys);
        foreach (var (name, t) in wa) Assert.True(t.ToFloatArray().SequenceEqual(wb[name].ToFloatArray()), $"{name} differs after stop + resume");
        Assert.Equal(LastJson(stdout)["ndcg@10"]!.GetValue<double>(), LastJson(or)["ndcg@10"]!.GetValue<double>());
        Assert.Equal("bert4rec", JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!["model"]!.GetValue<string>());

        var (ecode, eout, eerr) = CliTests.Run("rec", "eval", "--checkpoint", model, "--data", data, "--format", "pairs", "--json");
        Assert.True(ecode == 0, eerr);
        Assert.Equal(LastJson(stdout)["ndcg@10"]!.GetValue<double>(), LastJson(eout)["ndcg@10"]!.GetValue<double>(), 6);
        var (rcode, rout, rerr) = CliTests.Run("rec", "recommend", "--checkpoint", model, "--data", data, "--format", "pairs", "--user", "u7", "--top", "5", "--json");
        Assert.True(rcode == 0, rerr);
        Assert.Equal(5, LastJson(rout)["items"]!.AsArray().Count);

        using var loaded = RecModels.Load(model);
        var tokens = loaded.ItemTokens!;
        long[] history = [3, 7, 1, 12];
        var expected = RecRecommend.FullScores(loaded, history);
        var (scode, sout, serr) = CliTests.Run("rec", "score", "--checkpoint", model, "--history", string.Join(",", history.Select(i => tokens[(int)i])));
        Assert.True(scode == 0, serr);
        var got = sout.Trim().Split('\n')[^1].Split(',').Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(expected, got);   // n_items scores, "R" round-trips
    }

    [Theory]
    [InlineData("mamba4rec-1layer")]
    [InlineData("sasrec")]
    public void ScoreOnAFixtureDirectoryEqualsTheFixtureScores(string fixture)
    {
        var dir = Fixtures.Path_(fixture);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var seq = reference.Get("item_seq");
        int len = (int)reference.Get("item_seq_len").ToInt64Array()[0], l = seq.Shape[1];
        var history = seq.ToInt64Array()[..len];
        var expected = reference.Get("scores").ToDoubleArray();
        int n = expected.Length / reference.Get("scores").Shape[0];
        var (code, stdout, stderr) = CliTests.Run("rec", "score", "--checkpoint", dir, "--history", string.Join(",", history));
        Assert.True(code == 0, stderr);
        var got = stdout.Trim().Split('\n')[^1].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(n, got.Length);
        ModelFixtureTests.AssertClose(expected[..n], got, 1e-5, 1e-5, $"{fixture} scores");
        Assert.True(l >= len);
    }

    [Fact]
    public void RecommendThroughTheRecurrentStepEqualsTheFullForwardTopK()
    {
        var dir = Fixtures.Path_("mamba4rec-1layer");
        using var model = RecModels.Load(dir);
        var history = new long[] { 5, 9, 2, 17, 33, 2, 41, 8 };
        var full = RecRecommend.FullScores(model, history);
        var step = RecRecommend.RecurrentScores(model, history);
        for (int i = 0; i < full.Length; i++) Assert.Equal(full[i], step[i], 1e-4);
        var expected = Enumerable.Range(1, full.Length - 1).OrderByDescending(i => full[i]).ThenBy(i => i).Take(10).ToArray();
        var (code, stdout, stderr) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--history", string.Join(",", history), "--top", "10", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("recurrent step", stderr);
        Assert.Equal(expected, LastJson(stdout)["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray());
    }

    /// <summary>
    /// Batch mode (--histories): users of different lengths stepped together give, for every user, the same top-k
    /// (ids and scores) as the single-user command, which equals a full forward; histories longer than max_len are
    /// cut the same way. Mamba4Rec (recurrent batch) and SASRec (padded batch forward).
    /// </summary>
    [Theory]
    [InlineData("mamba4rec-1layer")]
    [InlineData("sasrec")]
    public void RecommendBatchEqualsTheSingleUserOutputForEveryHistory(string fixture)
    {
        var dir = Fixtures.Path_(fixture);
        using var model = RecModels.Load(dir);
        var rng = new Random(5);
        int[] lengths = [1, 7, 3, model.MaxLen + 4, 7, 2, model.MaxLen, 12];
        var histories = lengths.Select(l => Enumerable.Range(0, l).Select(_ => (long)rng.Next(1, model.NItems)).ToArray()).ToArray();
        var file = Path.Combine(_dir, "users.txt");
        File.WriteAllLines(file, histories.Select((h, u) => $"user{u} " + string.Join(' ', h)));
        var (code, stdout, stderr) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file, "--top", "5", "--json");
        Assert.True(code == 0, stderr);
        var lines = stdout.Trim().Split('\n').Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
        Assert.Equal(histories.Length, lines.Length);
        for (int u = 0; u < histories.Length; u++)
        {
            Assert.Equal($"user{u}", lines[u]["user"]!.GetValue<string>());
            var ids = lines[u]["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var scores = lines[u]["scores"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
            // the reference: one full forward over the last max_len items, ranked by a plain sort.
            var h = histories[u].Length > model.MaxLen ? histories[u][^model.MaxLen..] : histories[u];
            var full = RecRecommend.FullScores(model, h);
            var expected = Enumerable.Range(1, full.Length - 1).OrderByDescending(i => full[i]).ThenBy(i => i).Take(5).ToArray();
            Assert.Equal(expected, ids);
            for (int r = 0; r < 5; r++) Assert.Equal(full[ids[r]], scores[r], 1e-4);
            if (u is 0 or 3)
            {
                // the single-user command on the same history: the same items; the same scores (bit for bit where both
                // are Mamba4Rec's recurrent step; SASRec's padded batch forward sums in another order).
                var (c1, o1, e1) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--history", string.Join(",", histories[u]), "--top", "5", "--json");
                Assert.True(c1 == 0, e1);
                var single = LastJson(o1);
                Assert.Equal(single["ids"]!.ToJsonString(), lines[u]["ids"]!.ToJsonString());
                var singleScores = single["scores"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
                if (model.Model is Mamba4Rec) Assert.Equal(singleScores, scores);
                else for (int r = 0; r < 5; r++) Assert.Equal(singleScores[r], scores[r], 1e-5);
            }
        }
        // TSV: user, rank, item, score per row, k rows per user.
        var (tcode, tout, terr) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file, "--top", "5", "--exclude-history");
        Assert.True(tcode == 0, terr);
        var rows = tout.Trim().Split('\n').Select(l => l.Split('\t')).ToArray();
        Assert.Equal(5 * histories.Length, rows.Length);
        Assert.All(rows, r => Assert.Equal(4, r.Length));
        Assert.Equal(["user1", "1"], rows[5][..2]);
        Assert.All(rows, r => Assert.DoesNotContain(long.Parse(r[2], CultureInfo.InvariantCulture), histories[int.Parse(r[0][4..], CultureInfo.InvariantCulture)]));
    }

    [Fact]
    public void RecommendBatchNamesTheFileAndLineOfABadHistory()
    {
        var dir = Fixtures.Path_("mamba4rec-1layer");
        var file = Path.Combine(_dir, "bad-users.txt");
        foreach (var (line, expected) in new[] { ("2", "expected a user id followed by at least one item id"), ("3", "'50' is not an item id in 1..49") })
        {
            File.WriteAllLines(file, line == "2" ? ["a 1 2 3", "b", "d 7"] : ["a 1 2 3", "d 7", "c 4 50 6"]);
            var (code, _, stderr) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file);
            Assert.NotEqual(0, code);
            Assert.Contains($"{file}:{(line == "2" ? 2 : 3)}: {expected}", stderr);
            Assert.DoesNotContain("   at ", stderr);
        }
        File.WriteAllLines(file, ["a 1 2 3", "b", "c 4 50 6", "d 7"]);
        var (ok, stdout, err) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file, "--skip-bad-lines", "--top", "3");
        Assert.True(ok == 0, err);
        Assert.Contains("skipped 2 malformed line(s)", err);
        Assert.Equal(["a", "a", "a", "d", "d", "d"], stdout.Trim().Split('\n').Select(l => l.Split('\t')[0]).ToArray());
    }

    [Fact]
    public void RecommendBatchDropsItemTokensTheModelDoesNotKnow()
    {
        // the 1-layer fixture with a token map: item id i is token "m{i}".
        var dir = Path.Combine(_dir, "tokens-model");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixtures.Path_("mamba4rec-1layer"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(dir, RecModels.TokensFile), System.Text.Json.JsonSerializer.Serialize(Enumerable.Range(0, 50).Select(i => i == 0 ? "[PAD]" : $"m{i}").ToArray()));
        var file = Path.Combine(_dir, "token-users.txt");
        File.WriteAllLines(file, ["a m3 new1 m7 m9", "b m3 m7 m9"]);
        var (code, stdout, stderr) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file, "--top", "4", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("1 item(s) the model does not know were dropped", stderr);
        var lines = stdout.Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.Equal(JsonNode.Parse(lines[1])!["items"]!.ToJsonString(), JsonNode.Parse(lines[0])!["items"]!.ToJsonString());
        File.WriteAllLines(file, ["a m3 m7", "b new1 new2"]);
        var (bad, _, err) = CliTests.Run("rec", "recommend", "--checkpoint", dir, "--histories", file);
        Assert.NotEqual(0, bad);
        Assert.Contains($"{file}:2: none of the 2 item(s) of user 'b' is known to the model", err);
    }

    [Fact]
    public void StopAndResumeEqualsAnUninterruptedRun()
    {
        var data = TinyData();
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b");
        string[] args = ["rec", "train", "--data", data, .. Tiny, "--epochs", "3", "--json"];
        var (ca, oa, ea) = CliTests.Run([.. args, "--out", a]);
        Assert.True(ca == 0, ea);
        var (cb, _, eb) = CliTests.Run([.. args, "--out", b, "--stop-after", "2"]);  // mid-epoch (more than 2 steps per epoch)
        Assert.Equal(130, cb);
        Assert.Contains("--resume", eb);
        var (refuse, _, refuseErr) = CliTests.Run([.. args, "--out", b]);
        Assert.NotEqual(0, refuse);
        Assert.Contains("--resume", refuseErr);
        var (cr, or, er) = CliTests.Run([.. args, "--out", b, "--resume"]);
        Assert.True(cr == 0, er);
        var wa = SafetensorsFile.LoadAll(Path.Combine(a, "model", "model.safetensors"));
        var wb = SafetensorsFile.LoadAll(Path.Combine(b, "model", "model.safetensors"));
        Assert.Equal(wa.Keys.Order(), wb.Keys.Order());
        foreach (var (name, t) in wa) Assert.True(t.ToFloatArray().SequenceEqual(wb[name].ToFloatArray()), $"{name} differs after stop + resume");
        Assert.Equal(LastJson(oa)["ndcg@10"]!.GetValue<double>(), LastJson(or)["ndcg@10"]!.GetValue<double>());
        Assert.Equal(LastJson(oa)["best_epoch"]!.GetValue<int>(), LastJson(or)["best_epoch"]!.GetValue<int>());
    }

    [Fact]
    public void EvalBreakdownAndRanksAgreeWithTheOverallMetrics()
    {
        var data = TinyData();
        var outDir = Path.Combine(_dir, "res");
        var (code, stdout, stderr) = CliTests.Run(["rec", "train", "--data", data, .. Tiny, "--epochs", "2", "--residual", "--out", outDir, "--json"]);
        Assert.True(code == 0, stderr);
        var model = Path.Combine(outDir, "model");
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!["residual"]!.GetValue<bool>());
        var ranksPath = Path.Combine(_dir, "ranks.tsv");
        var (ecode, eout, eerr) = CliTests.Run("rec", "eval", "--checkpoint", model, "--data", data, "--format", "pairs", "--breakdown", "--ranks", ranksPath, "--json");
        Assert.True(ecode == 0, eerr);
        var overall = LastJson(eout);
        Assert.Equal(LastJson(stdout)["hit@10"]!.GetValue<double>(), overall["hit@10"]!.GetValue<double>(), 6);   // the residual model reloads
        Assert.Equal(LastJson(stdout)["ndcg@10"]!.GetValue<double>(), overall["ndcg@10"]!.GetValue<double>(), 6);
        Assert.Contains("test by history length:", eout);
        Assert.Contains("test by target's training interactions:", eout);

        // every test user is in the TSV; hit@10 and mrr@10 recomputed from its ranks equal the printed metrics
        var rows = File.ReadAllLines(ranksPath).Skip(1).Select(l => l.Split('\t')).ToArray();
        Assert.Equal(120, rows.Length);
        // history_length and target_train_count recounted from the 5-core filtered sequences (as tokens): each user's items in
        // order, the last is the test target, the second to last the validation target, the rest training
        var built = SequenceDataset.Build(InteractionReader.Read(data, RecFormat.Pairs), 5, 5);
        var sequences = Enumerable.Range(0, built.UserCount).ToDictionary(u => built.UserTokens[u], u => built.Sequences[u].Select(i => built.ItemTokens[i]).ToArray());
        var trainCount = sequences.Values.SelectMany(q => q[..^2]).GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count());
        foreach (var r in rows)
        {
            var q = sequences[r[0]];
            Assert.Equal(q[^1], r[2]);
            Assert.Equal(q.Length - 1, int.Parse(r[1], CultureInfo.InvariantCulture));
            Assert.Equal(trainCount.GetValueOrDefault(q[^1]), int.Parse(r[3], CultureInfo.InvariantCulture));
        }
        Assert.Contains("test by target already in the history (times):", eout);
        // its first row: users whose target is not among the last max_len (12) items of the history
        int fresh = rows.Count(r => !sequences[r[0]][..^1].TakeLast(12).Contains(r[2]));
        var repeatRow = eout.Split('\n').SkipWhile(l => !l.StartsWith("test by target already")).Skip(2).First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("0", repeatRow[0]);
        Assert.Equal(fresh, int.Parse(repeatRow[1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture));
        var ranks = rows.Select(r => int.Parse(r[4], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(overall["hit@10"]!.GetValue<double>(), ranks.Average(r => r <= 10 ? 1.0 : 0.0), 6);
        Assert.Equal(overall["mrr@10"]!.GetValue<double>(), ranks.Average(r => r <= 10 ? 1.0 / r : 0.0), 6);
        // the history-length table: users in its rows add up to all test users, and their weighted hit@10 is the overall one
        var table = eout.Split('\n').SkipWhile(l => !l.StartsWith("test by history length")).Skip(2).TakeWhile(l => l.StartsWith("  ")).ToArray();
        var groups = table.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f[3] != "-")
            .Select(f => (Users: int.Parse(f[1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture), Hit: double.Parse(f[3], CultureInfo.InvariantCulture))).ToArray();
        Assert.Equal(120, groups.Sum(g => g.Users));
        Assert.Equal(overall["hit@10"]!.GetValue<double>(), groups.Sum(g => g.Users * g.Hit) / 120, 3);
    }

    [Fact]
    public void TheResidualOptionChangesOnlyMamba4Rec()
    {
        var plain = (Mamba4Rec)RecModels.Create(new RecModelOptions { Hidden = 16, DState = 4 }, 30, seed: 5);
        var residual = (Mamba4Rec)RecModels.Create(new RecModelOptions { Hidden = 16, DState = 4, Residual = true }, 30, seed: 5);
        Assert.False(plain.Config.UsesResidual);      // the reference: no residual around a single layer
        Assert.True(residual.Config.UsesResidual);
        var back = RecModels.ReadMamba4Rec(ConfigReader.Parse(RecModels.WriteMamba4Rec(residual.Config), "config.json"));
        Assert.True(back.Residual);
        Assert.Null(RecModels.ReadMamba4Rec(ConfigReader.Parse(RecModels.WriteMamba4Rec(plain.Config), "config.json")).Residual);
        plain.Eval();
        residual.Eval();
        using var seq = Tensor.From(new long[] { 3, 7, 9, 2 }, 1, 4);
        var a = plain.SequenceOutput(seq).ToFloatArray();
        var b = residual.SequenceOutput(seq).ToFloatArray();
        Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);   // same weights, another function
        Assert.Throws<ArgumentException>(() => RecModels.Create(new RecModelOptions { Kind = "sasrec", Residual = true }, 30, seed: 5));
        plain.Dispose();
        residual.Dispose();
    }

    [Fact]
    public void BadInputFailsWithOneClearLine()
    {
        var bad = Path.Combine(_dir, "bad.data");
        File.WriteAllLines(bad, ["1\t10\t5\t881250949", "1\t11\t4\t881250950", "2\toops\t3"]);
        var cases = new (string Expected, string[] Args)[]
        {
            ("unknown data format 'xml'", ["rec", "train", "--data", bad, "--format", "xml"]),
            ("unknown model 'caser'", ["rec", "train", "--model", "caser"]),
            ($"{bad}:3: expected 4 fields", ["rec", "train", "--data", bad, "--format", "ml", "--out", Path.Combine(_dir, "o")]),
            ("model directory not found", ["rec", "score", "--checkpoint", Path.Combine(_dir, "nope"), "--history", "1,2"]),
            ("not an item id in 1..49", ["rec", "score", "--checkpoint", Fixtures.Path_("mamba4rec-1layer"), "--history", "1,50"]),
        };
        foreach (var (expected, args) in cases)
        {
            var (code, _, stderr) = CliTests.Run(args);
            Assert.True(code != 0, string.Join(' ', args));
            Assert.Contains(expected, stderr);
            Assert.DoesNotContain("   at ", stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }

    /// <summary>
    /// The two objectives agree on a small case: with every user's training part inside one window (no truncation)
    /// and no dropout, all-positions over the windows and RecBole's prefix samples are the same set of (history,
    /// target) pairs, so the mean losses and every gradient agree.
    /// </summary>
    [Theory]
    [InlineData("mamba4rec")]
    [InlineData("sasrec")]
    [InlineData("gru4rec")]
    public void AllPositionsAndRecBoleObjectivesGiveTheSameLossAndGradients(string kind)
    {
        var data = SequenceDataset.Build(SyntheticRecData.Generate(new SyntheticRecOptions { Users = 20, Items = 15, MinLength = 5, MaxLength = 9, Seed = 4 }), 1, 1);
        var split = LeaveOneOutSplit.Create(data);
        const int maxLen = 10;
        var model = RecModels.Create(new RecModelOptions { Kind = kind, MaxLen = maxLen, Hidden = 16, DState = 4, Dropout = 0f }, data.NItems, 3);
        using var module = (Nn.Module)model;
        module.Eval();
        var windows = split.TrainWindows(maxLen);
        Assert.Equal(split.Train.Length, windows.Sum(w => w.Length));

        float[] Grads() => module.Parameters().SelectMany(p => p.Grad?.ToFloatArray() ?? new float[p.Shape.NumElements]).ToArray();
        double l1, l2;
        float[] g1, g2;
        using (var scope = new TensorScope())
        {
            using var wb = SequenceBatcher.FromWindows(data, windows, maxLen);
            var (loss, positions) = RecExperiment.AllPositionsLoss(model, wb.ItemSeq, wb.Targets!);
            Assert.Equal(split.Train.Length, positions);
            l1 = loss.Item();
            Assert.Equal(model.AllPositions(wb.ItemSeq, wb.Targets!).Item(), l1, 5);
            loss.Backward();
            Tape.Clear();
            g1 = Grads();
            module.ZeroGrad();
        }
        using (var scope = new TensorScope())
        {
            using var sb = SequenceBatcher.FromSamples(data, split.Train, maxLen);
            var loss = model.NextItem(sb.ItemSeq, sb.ItemSeqLen, sb.PosItems!);
            l2 = loss.Item();
            loss.Backward();
            Tape.Clear();
            g2 = Grads();
            module.ZeroGrad();
        }
        Assert.Equal(l2, l1, 5);
        Assert.Equal(g2.Length, g1.Length);
        ModelFixtureTests.AssertClose(g2.Select(x => (double)x).ToArray(), g1, 1e-3, 1e-5, $"{kind} gradients");
    }
}
