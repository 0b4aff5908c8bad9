using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.Evaluation;
using Mamba4.Models;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec`: sequential recommendation (Mamba4Rec, SASRec, GRU4Rec) — train, eval, score, recommend, compare.</summary>
internal static class RecCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create()
    {
        var cmd = new Command("rec", """
            Sequential recommendation: Mamba4Rec (and the SASRec / GRU4Rec baselines) trained and evaluated as RecBole does
            (5-core filter, leave-one-out split, full ranking over all items, hit/ndcg/mrr@5,10,20).
            Without --data every command uses a built-in synthetic dataset.
            """);
        cmd.Subcommands.Add(Train());
        cmd.Subcommands.Add(Compare());
        cmd.Subcommands.Add(Eval());
        cmd.Subcommands.Add(Score());
        cmd.Subcommands.Add(Recommend());
        return cmd;
    }

    // ---------------- shared options ----------------

    private sealed class DataOptions
    {
        public readonly Option<string?> Data = new("--data") { Description = "interaction file (default: the built-in synthetic dataset)" };
        public readonly Option<string?> Format = new("--format") { Description = $"{RecFormats.Names.Replace(", ", " | ")} (default: guessed from the file name)" };
        public readonly Option<bool> SkipBad = new("--skip-bad-lines") { Description = "skip (and count) malformed lines instead of failing" };

        public IEnumerable<Option> All => [Data, Format, SkipBad];

        public SequenceDataset Load(ParseResult parse)
        {
            string? path = parse.GetValue(Data), format = parse.GetValue(Format);
            var log = RecData.Read(path, format, parse.GetValue(SkipBad));
            if (log.BadLines > 0)
            {
                Console.Error.WriteLine($"skipped {log.BadLines:N0} malformed line(s) of {log.Source}");
                foreach (var m in log.BadLineMessages) Console.Error.WriteLine("  " + m);
            }
            var data = SequenceDataset.Build(log, 5, 5);
            Console.Error.WriteLine($"data: {(path is null ? "built-in synthetic" : path)}: {log.Count:N0} interactions read; after the 5-core filter " +
                                    $"({data.FilterRounds} round(s), {data.RemovedInteractions:N0} removed): {data.Statistics}");
            return data;
        }
    }

    private sealed class ModelOptions
    {
        public readonly Option<string> Model = new("--model") { Description = "mamba4rec | sasrec | gru4rec", DefaultValueFactory = _ => "mamba4rec" };
        public readonly Option<int> MaxLen = new("--max-len") { Description = "most recent items a prediction sees (MAX_ITEM_LIST_LENGTH; 200 for MovieLens)", DefaultValueFactory = _ => 50 };
        public readonly Option<int?> Hidden = new("--hidden") { Description = "hidden size (GRU4Rec: embedding size); default 64" };
        public readonly Option<int?> Layers = new("--layers") { Description = "layers (default: Mamba4Rec 1, SASRec 2, GRU4Rec 1)" };
        public readonly Option<int?> DState = new("--d-state") { Description = "Mamba4Rec SSM state size (default 32)" };
        public readonly Option<float?> Dropout = new("--dropout") { Description = "dropout (default: Mamba4Rec 0.2, SASRec 0.5, GRU4Rec 0.3)" };

        public readonly Option<bool?> Residual = new("--residual")
        {
            Description = "Mamba4Rec: residual around the Mamba block (default: the reference's rule, only with 2+ layers); an error for other models, ignored for them by compare",
        };

        public IEnumerable<Option> All => [Model, MaxLen, Hidden, Layers, DState, Dropout, Residual];

        public RecModelOptions Get(ParseResult parse, string? kind = null) => new()
        {
            Kind = RecModels.ParseKind(kind ?? parse.GetValue(Model)!), MaxLen = parse.GetValue(MaxLen), Hidden = parse.GetValue(Hidden),
            Layers = parse.GetValue(Layers), DState = parse.GetValue(DState), Dropout = parse.GetValue(Dropout),
            // train passes the flag on (Create refuses it for other models); compare applies it to Mamba4Rec only
            Residual = kind is null || RecModels.ParseKind(kind) == "mamba4rec" ? parse.GetValue(Residual) : null,
        };
    }

    private sealed class TrainOptions
    {
        public readonly Option<int> Epochs = new("--epochs") { Description = "maximum epochs", DefaultValueFactory = _ => 300 };
        public readonly Option<int> Patience = new("--patience") { Description = "stop after this many epochs without a better validation ndcg@10", DefaultValueFactory = _ => 10 };
        public readonly Option<int> Batch = new("--batch") { Description = "training targets per step (all-positions: about this many targets' worth of user windows)", DefaultValueFactory = _ => 2048 };
        public readonly Option<float> Lr = new("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 1e-3f };
        public readonly Option<string> Objective = new("--objective") { Description = "all-positions (one causal forward per user, fast) | recbole (every prefix one sample)", DefaultValueFactory = _ => "all-positions" };
        public readonly Option<long> Seed = new("--seed") { Description = "seed for weights, order and dropout", DefaultValueFactory = _ => 1 };
        public readonly Option<bool> Resume = new("--resume") { Description = "continue from the checkpoint in the output folder" };
        public readonly Option<long?> StopAfter = new("--stop-after") { Description = "stop with a checkpoint after this many steps of this invocation (as Ctrl-C would)" };
        public readonly Option<bool> Json = new("--json") { Description = "print one JSON object with the results as the last line" };

        public IEnumerable<Option> All => [Epochs, Patience, Batch, Lr, Objective, Seed, Resume, StopAfter, Json];
    }

    // ---------------- train / compare ----------------

    private static Command Train()
    {
        var d = new DataOptions();
        var m = new ModelOptions();
        var t = new TrainOptions();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/rec-<model>)" };
        var cmd = new Command("train", """
            Train a sequential recommender: validation (full ranking) after every epoch, early stopping on
            validation ndcg@10, the best model kept in <out>/model (config.json + model.safetensors +
            item_tokens.json), test metrics of that model at the end. Ctrl-C writes a checkpoint; --resume continues.

            Examples:
              mamba4 rec train
              mamba4 rec train --data Beauty.txt --format seq --json
              mamba4 rec train --data ml-100k/u.data --format ml --max-len 200 --model sasrec
            """);
        foreach (var o in d.All.Concat(m.All).Concat(t.All).Append(output)) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            var mo = m.Get(parse);
            var outDir = parse.GetValue(output) ?? Path.Combine("runs", "rec-" + mo.Kind);
            RunFolder.Prepare(outDir, parse.GetValue(t.Resume), Console.Error.WriteLine);
            var data = d.Load(parse);
            var result = TrainOne(parse, d, t, mo, data, outDir);
            if (result.Interrupted) { Console.Error.WriteLine($"stopped at epoch {result.EpochsRun}; checkpoint written. Continue with --resume."); return 130; }
            Console.WriteLine($"{mo.Kind}: best validation ndcg@10 {result.Valid.GetValueOrDefault("ndcg@10"):F4} at epoch {result.BestEpoch} of {result.EpochsRun}" +
                              $"{(result.EarlyStopped ? " (early stopped)" : "")}; {result.SecondsPerEpoch:F1} s/epoch; model: {Path.Combine(outDir, "model")}");
            Console.WriteLine("test  " + string.Join("  ", result.Test.Select(kv => $"{kv.Key} {kv.Value:F4}")));
            if (parse.GetValue(t.Json)) Console.WriteLine(ResultJson(mo.Kind, data, parse, t, result).ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static Command Compare()
    {
        var d = new DataOptions();
        var m = new ModelOptions();
        var t = new TrainOptions();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/rec-compare; one sub-folder per model)" };
        var models = new Option<string>("--models") { Description = "comma-separated models to train", DefaultValueFactory = _ => "mamba4rec,sasrec,gru4rec" };
        var cmd = new Command("compare", """
            Train Mamba4Rec, SASRec and GRU4Rec on the same data and protocol and print one table: test
            hit/ndcg/mrr@10, epochs to the best validation, seconds per epoch, peak memory, inference ms per batch.

            Example:
              mamba4 rec compare --data ml-100k/u.data --format ml --max-len 200
            """);
        foreach (var o in d.All.Concat(m.All.Where(o => o != m.Model)).Concat(t.All).Append(output).Append(models)) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            var kinds = parse.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(RecModels.ParseKind).ToArray();
            var outDir = parse.GetValue(output) ?? Path.Combine("runs", "rec-compare");
            RunFolder.Prepare(outDir, parse.GetValue(t.Resume), Console.Error.WriteLine, kinds.Select(k => Path.Combine(outDir, k)).ToArray());
            var data = d.Load(parse);
            var rows = new List<(string Kind, RecTrainResult R)>();
            string header = $"{"model",-10} {"hit@10",8} {"ndcg@10",8} {"mrr@10",8} {"best ep",8} {"epochs",7} {"s/epoch",8} {"train s",8} {"peak MB",8} {"ms/batch",9}";
            string Row(string kind, RecTrainResult r) => string.Create(Inv,
                $"{kind,-10} {r.Test["hit@10"],8:F4} {r.Test["ndcg@10"],8:F4} {r.Test["mrr@10"],8:F4} {r.BestEpoch,8} {r.EpochsRun,7} {r.SecondsPerEpoch,8:F1} {r.TrainSecondsPerEpoch,8:F1} {r.PeakBytes / 1048576.0,8:F0} {r.InferenceMsPerBatch,9:F1}");
            foreach (var kind in kinds)
            {
                var r = TrainOne(parse, d, t, m.Get(parse, kind), data, Path.Combine(outDir, kind));
                if (r.Interrupted) { Console.Error.WriteLine($"stopped during {kind}; checkpoint written. Continue with --resume."); return 130; }
                rows.Add((kind, r));
                Console.Error.WriteLine(header + "\n" + Row(kind, r)); // each model's row as soon as it is done
            }
            Console.WriteLine(header);
            foreach (var (kind, r) in rows) Console.WriteLine(Row(kind, r));
            Console.Error.WriteLine("(s/epoch: training + validation; train s: training only; peak MB: peak tensor memory during that model's run; " +
                                    $"ms/batch: full-ranking test inference per batch of {new RecTrainOptions().EvalBatch} users)");
            if (parse.GetValue(t.Json))
                Console.WriteLine(new JsonObject(rows.Select(r => KeyValuePair.Create(r.Kind, (JsonNode?)ResultJson(r.Kind, data, parse, t, r.R)))).ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static RecTrainResult TrainOne(ParseResult parse, DataOptions d, TrainOptions t, RecModelOptions mo, SequenceDataset data, string outDir)
    {
        var options = new RecTrainOptions
        {
            Epochs = parse.GetValue(t.Epochs), Patience = parse.GetValue(t.Patience), Batch = parse.GetValue(t.Batch), LearningRate = parse.GetValue(t.Lr),
            Objective = RecTrainOptions.ParseObjective(parse.GetValue(t.Objective)!), Seed = parse.GetValue(t.Seed), OutputDirectory = outDir,
            StopAfter = parse.GetValue(t.StopAfter),
        };
        if (options.Epochs < 1) throw new ArgumentException($"--epochs must be positive, got {options.Epochs}");
        var split = LeaveOneOutSplit.Create(data);
        var model = RecModels.Create(mo, data.NItems, (int)options.Seed);
        var module = (Nn.Module)model;
        try
        {
            var path = parse.GetValue(d.Data);
            var config = new JsonObject
            {
                ["task"] = "rec", ["data"] = path is null ? "built-in" : Path.GetFullPath(path), ["format"] = parse.GetValue(d.Format), ["n_items"] = data.NItems,
                ["users"] = data.UserCount, ["model"] = mo.Kind, ["model_config"] = RecModels.ConfigJson(model, mo.MaxLen), ["max_len"] = mo.MaxLen,
                ["epochs"] = options.Epochs, ["patience"] = options.Patience, ["batch"] = options.Batch, ["lr"] = options.LearningRate,
                ["objective"] = RecTrainOptions.Name(options.Objective), ["seed"] = options.Seed,
            };
            try { Directory.CreateDirectory(outDir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new IOException($"--out: {outDir} cannot be written: {e.Message}", e); }
            using var exp = new RecExperiment(split, model, mo.MaxLen, options, config) { ItemTokens = data.ItemTokens };
            if (parse.GetValue(t.Resume) && exp.Resume())
            {
                Console.Error.WriteLine($"{mo.Kind}: resuming at step {exp.Trainer.Step} (epoch {exp.Trainer.Step / exp.StepsPerEpoch})");
            }
            Console.Error.WriteLine($"{mo.Kind}: {module.ParameterCount:N0} parameters; {split.Train.Length:N0} training targets " +
                                    $"({exp.UnitsPerEpoch:N0} {(options.Objective == RecObjective.AllPositions ? "user windows" : "samples")}, {exp.UnitsPerStep:N0} per step, {exp.StepsPerEpoch} steps/epoch, objective {RecTrainOptions.Name(options.Objective)}), " +
                                    $"{split.Valid.Length:N0} validation / {split.Test.Length:N0} test users, max_len {mo.MaxLen}");
            exp.EpochDone += r =>
            {
                double eta = r.SecondsPerEpoch * (r.Epochs - r.Epoch);
                Console.Error.WriteLine(string.Create(Inv,
                    $"  {mo.Kind} epoch {r.Epoch}/{r.Epochs}  loss {r.Loss:F4}  valid hit@10 {r.Valid["hit@10"]:F4} ndcg@10 {r.Valid["ndcg@10"]:F4} mrr@10 {r.Valid["mrr@10"]:F4}" +
                    $"  best {r.BestNdcg:F4} @{r.BestEpoch}  {r.SecondsThisEpoch:F1} s  eta {Eta(eta)} (or early stop in {options.Patience - r.EpochsWithoutImprovement})"));
            };
            bool stop = false;
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop = true; });
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop = true; });
            var result = exp.Run(() => stop);
            return result;
        }
        finally { module.Dispose(); }
    }

    private static string Eta(double s) =>
        double.IsFinite(s) ? s >= 3600 ? $"{(int)(s / 3600)}h{(int)(s % 3600 / 60):D2}m" : s >= 60 ? $"{(int)(s / 60)}m{(int)(s % 60):D2}s" : $"{s:F0}s" : "-";

    private static JsonObject ResultJson(string kind, SequenceDataset data, ParseResult parse, TrainOptions t, RecTrainResult r)
    {
        var o = new JsonObject
        {
            ["model"] = kind, ["objective"] = parse.GetValue(t.Objective), ["users"] = data.UserCount, ["items"] = data.NItems - 1,
            ["interactions"] = data.InteractionCount,
        };
        foreach (var (k, v) in r.Test) o[k] = Math.Round(v, 6);
        foreach (var (k, v) in r.Valid) o["valid_" + k] = Math.Round(v, 6);
        o["epochs"] = r.EpochsRun;
        o["best_epoch"] = r.BestEpoch;
        o["early_stopped"] = r.EarlyStopped;
        o["seconds"] = Math.Round(r.Seconds, 2);
        o["seconds_per_epoch"] = Math.Round(r.SecondsPerEpoch, 3);
        o["train_seconds_per_epoch"] = Math.Round(r.TrainSecondsPerEpoch, 3);
        o["inference_ms_per_batch"] = Math.Round(r.InferenceMsPerBatch, 2);
        o["peak_memory_bytes"] = r.PeakBytes;
        return o;
    }

    // ---------------- eval ----------------

    private static Option<string> CheckpointOpt() => new("--checkpoint") { Description = "a model directory (written by `mamba4 rec train`, or a fixture)", Required = true };

    private static Option<string?> KindOpt() => new("--model") { Description = "mamba4rec | sasrec | gru4rec, when config.json does not say" };

    private static Command Eval()
    {
        var d = new DataOptions();
        var ckpt = CheckpointOpt();
        var kind = KindOpt();
        var maxLen = new Option<int?>("--max-len") { Description = "most recent items a prediction sees (default: the model's)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var breakdown = new Option<bool>("--breakdown") { Description = "also print test hit/ndcg/mrr@10 by history length, by the target's training popularity and by how often the target occurs in the last max_len items of the history" };
        var ranksFile = new Option<string?>("--ranks") { Description = "write each test user's rank to this TSV file (user, history_length, target, target_train_count, rank)" };
        var cmd = new Command("eval", """
            Full-ranking test (and validation) metrics of a saved model on a dataset, split leave-one-out as in training.

            Example:
              mamba4 rec eval --checkpoint runs/rec-mamba4rec/model --data Beauty.txt --format seq --breakdown
            """);
        foreach (var o in d.All.Concat([ckpt, kind, maxLen, json, breakdown, ranksFile])) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            if (parse.GetValue(maxLen) is { } ml) ModelLimits.Check("--max-len", ml, ModelLimits.Positions);
            using var model = RecModels.Load(parse.GetValue(ckpt)!, parse.GetValue(kind), options: AllowNonFiniteOption.LoadOptions(parse, allowNonFinite));
            var data = RecData.ToModelIds(d.Load(parse), model, out int unknown);
            if (unknown > 0) Console.Error.WriteLine($"{unknown:N0} interaction(s) with items the model does not know were dropped");
            int len = parse.GetValue(maxLen) ?? model.MaxLen;
            var split = LeaveOneOutSplit.Create(data);
            if (split.Test.Length == 0) throw new InvalidDataException($"{data.Source}: no user has a test sample");
            var testRanks = RecExperiment.Ranks(model.Model, data, split.Test, len);
            var test = RankingAccumulator.Of(testRanks);
            var valid = split.Valid.Length > 0 ? RecExperiment.Evaluate(model.Model, data, split.Valid, len) : new Dictionary<string, double>();
            Console.WriteLine($"{model.Kind}: {split.Test.Length:N0} test users, max_len {len}");
            Console.WriteLine("test   " + string.Join("  ", test.Select(kv => $"{kv.Key} {kv.Value:F4}")));
            if (valid.Count > 0) Console.WriteLine("valid  " + string.Join("  ", valid.Select(kv => $"{kv.Key} {kv.Value:F4}")));
            if (parse.GetValue(breakdown) || parse.GetValue(ranksFile) is not null)
                WriteBreakdown(split, testRanks, len, parse.GetValue(breakdown), parse.GetValue(ranksFile));
            if (parse.GetValue(json))
            {
                var o = new JsonObject { ["model"] = model.Kind, ["users"] = split.Test.Length };
                foreach (var (k, v) in test) o[k] = Math.Round(v, 6);
                foreach (var (k, v) in valid) o["valid_" + k] = Math.Round(v, 6);
                Console.WriteLine(o.ToJsonString());
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Test metrics by the user's history length (items before the target), by the target's count in the training parts
    /// of all sequences, and by how often the target occurs in the last max_len items of the history; or each rank as TSV.
    /// </summary>
    private static void WriteBreakdown(LeaveOneOutSplit split, int[] ranks, int maxLen, bool print, string? ranksPath)
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
            Table("history length", length, [1, 2, 4, 6, 9, 16, 31, 51]);
            Table("target's training interactions", popularity, [0, 1, 5, 10, 20, 50, 100, 200, 500]);
            Table("target already in the history (times)", repeats, [0, 1]);
        }
        if (ranksPath is not null)
        {
            using var w = new StreamWriter(ranksPath);
            w.WriteLine("user\thistory_length\ttarget\ttarget_train_count\trank");
            for (int i = 0; i < n; i++)
                w.WriteLine(string.Create(Inv, $"{data.UserTokens[split.Test[i].User]}\t{length[i]}\t{data.ItemTokens[targets[i]]}\t{popularity[i]}\t{ranks[i]}"));
            Console.WriteLine($"ranks of {n:N0} test users written to {ranksPath}");
        }

        void Table(string title, long[] keys, long[] edges)
        {
            Console.WriteLine($"test by {title}:");
            Console.WriteLine($"  {"group",-10} {"users",8} {"share",7} {"hit@10",8} {"ndcg@10",8} {"mrr@10",8}");
            foreach (var g in RankingBreakdown.ByKey(ranks, keys, edges))
                Console.WriteLine(g.Count == 0 ? string.Create(Inv, $"  {g.Label,-10} {0,8} {0.0,6:F1}% {"-",8} {"-",8} {"-",8}")
                    : string.Create(Inv, $"  {g.Label,-10} {g.Count,8:N0} {100.0 * g.Count / Math.Max(1, n),6:F1}% {g.Hit,8:F4} {g.Ndcg,8:F4} {g.Mrr,8:F4}"));
        }
    }

    // ---------------- score / recommend ----------------

    /// <summary>History items → model ids: through the token map when the model has one (unless --ids), else ids.</summary>
    private static long[] ParseHistory(string text, RecModel model, bool ids)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("--history must list at least one item, e.g. --history 5,9,2");
        bool tokens = !ids && model.ItemTokens is not null;
        var result = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (tokens)
            {
                result[i] = model.ItemId(parts[i]) ?? throw new ArgumentException($"--history: item '{parts[i]}' is not one of the model's items (pass --ids to give item ids 1..{model.NItems - 1})");
                continue;
            }
            if (!long.TryParse(parts[i], NumberStyles.Integer, Inv, out result[i]) || result[i] < 1 || result[i] >= model.NItems)
                throw new ArgumentException($"--history: '{parts[i]}' is not an item id in 1..{model.NItems - 1} (0 is padding)");
        }
        return result.Length > model.MaxLen ? result[^model.MaxLen..] : result;
    }

    private static Command Score()
    {
        var ckpt = CheckpointOpt();
        var kind = KindOpt();
        var history = new Option<string>("--history") { Description = "the user's items, oldest first, comma-separated", Required = true };
        var ids = new Option<bool>("--ids") { Description = "the history gives item ids, not the original item tokens" };
        var cmd = new Command("score", """
            The score of every item id 0..n_items-1 (0 = padding) after a history, one full forward, comma-separated
            on the last line of stdout. History items are the original item tokens of a trained model, or item ids
            (fixtures, or --ids).

            Example:
              mamba4 rec score --checkpoint fixtures/mamba4rec-1layer --history 5,9,2
            """);
        foreach (var o in new Option[] { ckpt, kind, history, ids }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            using var model = RecModels.Load(parse.GetValue(ckpt)!, parse.GetValue(kind), options: AllowNonFiniteOption.LoadOptions(parse, allowNonFinite));
            var h = ParseHistory(parse.GetValue(history)!, model, parse.GetValue(ids));
            var scores = RecRecommend.FullScores(model, h);
            Console.Error.WriteLine($"{model.Kind}: {model.NItems} item scores after {h.Length} item(s)");
            Console.WriteLine(string.Join(",", scores.Select(s => s.ToString("R", Inv))));
            return 0;
        });
        return cmd;
    }

    private static Command Recommend()
    {
        var d = new DataOptions();
        var ckpt = CheckpointOpt();
        var kind = KindOpt();
        var history = new Option<string?>("--history") { Description = "the user's items, oldest first, comma-separated" };
        var user = new Option<string?>("--user") { Description = "a user of --data: the whole history in the file" };
        var ids = new Option<bool>("--ids") { Description = "the history gives item ids, not the original item tokens" };
        var top = new Option<int>("--top") { Description = "how many items", DefaultValueFactory = _ => 10 };
        var exclude = new Option<bool>("--exclude-history") { Description = "never recommend an item already in the history" };
        var histories = new Option<string?>("--histories") { Description = "batch mode: a file of user histories, one line per user: user item item ... (oldest first)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object (items, ids, scores) as the last line; batch mode: one JSON object per user" };
        var cmd = new Command("recommend", """
            The top items after a user's history. Mamba4Rec walks the history with its recurrent step (O(1) per
            interaction; equal to a full forward), the others run one forward. The history is the last max_len items.
            Batch mode (--histories FILE, the `seq` format: one line per user, `user item item ...`): the users' states
            are stepped together, and one line per recommended item is printed, `user<TAB>rank<TAB>item<TAB>score`
            (with --json one object per user: user, items, ids, scores).

            Examples:
              mamba4 rec recommend --checkpoint runs/rec-mamba4rec/model --history 12,40,7 --top 10
              mamba4 rec recommend --checkpoint runs/rec-mamba4rec/model --data u.data --format ml --user 196
              mamba4 rec recommend --checkpoint runs/rec-mamba4rec/model --histories users.txt --top 10 > top10.tsv
            """);
        foreach (var o in d.All.Concat([ckpt, kind, history, user, histories, ids, top, exclude, json])) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            using var model = RecModels.Load(parse.GetValue(ckpt)!, parse.GetValue(kind), options: AllowNonFiniteOption.LoadOptions(parse, allowNonFinite));
            int k = parse.GetValue(top);
            if (k < 1) throw new ArgumentException($"--top must be positive, got {k}");
            if (parse.GetValue(histories) is { } file)
            {
                if (parse.GetValue(history) is not null || parse.GetValue(user) is not null) throw new ArgumentException("give --histories, --history or --user, not two of them");
                return RecommendBatch(model, file, k, parse.GetValue(ids), parse.GetValue(d.SkipBad), parse.GetValue(exclude), parse.GetValue(json));
            }
            long[] h;
            if (parse.GetValue(user) is { } u)
            {
                if (parse.GetValue(history) is not null) throw new ArgumentException("give --history or --user, not both");
                if (parse.GetValue(d.Data) is null) throw new ArgumentException("--user needs --data (the file holding the user's interactions)");
                var raw = d.Load(parse);
                int uid = raw.UserId(u) ?? throw new ArgumentException($"--user: '{u}' is not a user of {raw.Source} (after the 5-core filter)");
                var data = RecData.ToModelIds(raw, model, out _);
                h = data.Sequences[uid].Select(x => (long)x).ToArray();
                if (h.Length == 0) throw new ArgumentException($"--user: none of '{u}''s items is known to the model");
                if (h.Length > model.MaxLen) h = h[^model.MaxLen..];
            }
            else h = ParseHistory(parse.GetValue(history) ?? throw new ArgumentException("give --history (items, comma-separated) or --user with --data"), model, parse.GetValue(ids));
            var scores = RecRecommend.RecurrentScores(model, h);
            var best = RecRecommend.TopK(scores, k, parse.GetValue(exclude) ? h.ToHashSet() : null);
            string Token(int id) => model.ItemTokens?[id] ?? id.ToString(Inv);
            Console.Error.WriteLine($"{model.Kind}: top {best.Length} after {h.Length} item(s){(model.Model is Mamba4Rec ? " (recurrent step)" : "")}");
            for (int r = 0; r < best.Length; r++)
                Console.WriteLine(string.Create(Inv, $"{r + 1,3}. {Token(best[r])}  (id {best[r]}, score {scores[best[r]]:F5})"));
            if (parse.GetValue(json))
                Console.WriteLine(new JsonObject
                {
                    ["items"] = new JsonArray(best.Select(i => (JsonNode?)Token(i)).ToArray()),
                    ["ids"] = new JsonArray(best.Select(i => (JsonNode?)i).ToArray()),
                    ["scores"] = new JsonArray(best.Select(i => (JsonNode?)scores[i]).ToArray()),
                }.ToJsonString());
            return 0;
        });
        return cmd;
    }

    /// <summary>Batch mode of `recommend`: every history of the file, top-k per user on stdout (TSV rows or JSON lines).</summary>
    private static int RecommendBatch(RecModel model, string file, int k, bool ids, bool skipBad, bool exclude, bool json)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"--histories: {file} not found", file);
        var users = RecRecommend.ReadHistories(file, model, ids, skipBad, out int bad, out var badMessages, out int unknown);
        if (unknown > 0) Console.Error.WriteLine($"{unknown:N0} item(s) the model does not know were dropped from the histories");
        if (bad > 0)
        {
            Console.Error.WriteLine($"skipped {bad:N0} malformed line(s) of {file}");
            foreach (var m in badMessages) Console.Error.WriteLine("  " + m);
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var top = RecRecommend.Recommend(model, users.Select(u => u.History).ToArray(), k, exclude);
        string Token(int id) => model.ItemTokens?[id] ?? id.ToString(Inv);
        using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
        for (int u = 0; u < users.Count; u++)
        {
            var (best, scores) = top[u];
            if (json)
                stdout.WriteLine(new JsonObject
                {
                    ["user"] = users[u].User,
                    ["items"] = new JsonArray(best.Select(i => (JsonNode?)Token(i)).ToArray()),
                    ["ids"] = new JsonArray(best.Select(i => (JsonNode?)i).ToArray()),
                    ["scores"] = new JsonArray(scores.Select(x => (JsonNode?)x).ToArray()),
                }.ToJsonString());
            else
                for (int r = 0; r < best.Length; r++)
                    stdout.WriteLine(string.Create(Inv, $"{users[u].User}\t{r + 1}\t{Token(best[r])}\t{scores[r].ToString("R", Inv)}"));
        }
        Console.Error.WriteLine($"{model.Kind}: top {k} for {users.Count:N0} user(s) of {file} in {sw.Elapsed.TotalSeconds:F2} s" +
                                $"{(model.Model is Mamba4Rec ? " (recurrent step, users stepped together)" : "")}");
        return 0;
    }
}
