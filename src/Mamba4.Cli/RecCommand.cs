using System.CommandLine;
using Mamba4.Data.Recommendation;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec`: sequential recommendation (Mamba4Rec, SASRec, GRU4Rec) — train, eval, score, recommend, compare.</summary>
internal static class RecCommand
{
    public static Command Create()
    {
        var cmd = new Command("rec", """
            Sequential recommendation: Mamba4Rec (and the SASRec / BERT4Rec / GRU4Rec baselines) trained and evaluated as RecBole does
            (5-core filter, leave-one-out split, full ranking over all items, hit/ndcg/mrr@5,10,20).
            Without --data every command uses a built-in synthetic dataset.
            """);
        cmd.Subcommands.Add(RecTrainCommand.Create());
        cmd.Subcommands.Add(RecCompareCommand.Create());
        cmd.Subcommands.Add(RecEvalCommand.Create());
        cmd.Subcommands.Add(RecScoreCommand.Create());
        cmd.Subcommands.Add(RecRecommendCommand.Create());
        return cmd;
    }

    // The options that several subcommands share; each subcommand creates its own instances.

    internal sealed class DataOptions
    {
        public readonly Option<string?> Data = new("--data") { Description = "interaction file, plain or gzip (default: the built-in synthetic dataset)" };
        public readonly Option<string?> Format = new("--format") { Description = $"{RecFormats.Names.Replace(", ", " | ")} (default: guessed from the file name)" };
        public readonly Option<bool> SkipBad = new("--skip-bad-lines") { Description = "skip (and count) malformed lines instead of failing" };

        public IEnumerable<Option> All => [Data, Format, SkipBad];

        public RecDataSettings Get(ParseResult parse) => new() { Path = parse.GetValue(Data), Format = parse.GetValue(Format), SkipBadLines = parse.GetValue(SkipBad) };
    }

    internal sealed class ModelOptions
    {
        private static readonly RecModelOptions D = new();
        public readonly Option<string> Model = new("--model") { Description = "mamba4rec | sasrec | bert4rec | gru4rec", DefaultValueFactory = _ => D.Kind };
        public readonly Option<int> MaxLen = new("--max-len") { Description = "most recent items a prediction sees (MAX_ITEM_LIST_LENGTH; 200 for MovieLens)", DefaultValueFactory = _ => D.MaxLen };
        public readonly Option<int?> Hidden = new("--hidden") { Description = "hidden size (GRU4Rec: embedding size); default 64" };
        public readonly Option<int?> Layers = new("--layers") { Description = "layers (default: Mamba4Rec 1, SASRec 2, BERT4Rec 2, GRU4Rec 1)" };
        public readonly Option<int?> DState = new("--d-state") { Description = "Mamba4Rec SSM state size (default 32)" };
        public readonly Option<float?> Dropout = new("--dropout") { Description = "dropout (default: Mamba4Rec 0.2, SASRec 0.5, BERT4Rec 0.2, GRU4Rec 0.3)" };
        public readonly Option<string> Preset = new("--preset")
        {
            Description = "default | paper: Mamba4Rec pinned to the paper's configuration (hidden 64, 1 layer, d_state 32, d_conv 4, expand 2, dropout 0.2; the defaults equal it today); baselines at RecBole's defaults under both; explicit size options still apply",
            DefaultValueFactory = _ => D.Preset,
        };
        public readonly Option<string> Attention = new("--attention")
        {
            Description = "SASRec / BERT4Rec attention: fused (no L×L tensor kept) | naive (RecBole's materialised L×L scores and probabilities: same results, L² memory)",
            DefaultValueFactory = _ => D.Attention,
        };

        public readonly Option<bool?> Residual = new("--residual")
        {
            Description = "Mamba4Rec: residual around the Mamba block (default: the reference's rule, only with 2+ layers); an error for other models, ignored for them by compare",
        };

        public readonly Option<string> Mixer = new("--mixer") { Description = "Mamba4Rec's mixer: mamba1 | mamba2 (SSD, multi-head)", DefaultValueFactory = _ => D.Mixer };
        public readonly Option<int?> HeadDim = new("--head-dim") { Description = "Mamba4Rec with --mixer mamba2: head width (default: ≤ 64 dividing 2·hidden, at least 4 heads)" };

        /// <summary>The sizes, without --model (compare trains several).</summary>
        public IEnumerable<Option> Sizes => [MaxLen, Hidden, Layers, DState, Dropout, Residual, Mixer, HeadDim, Preset, Attention];

        public RecModelOptions Get(ParseResult parse, bool withKind) => new()
        {
            Kind = withKind ? parse.GetValue(Model)! : D.Kind, MaxLen = parse.GetValue(MaxLen), Hidden = parse.GetValue(Hidden),
            Layers = parse.GetValue(Layers), DState = parse.GetValue(DState), Dropout = parse.GetValue(Dropout), Residual = parse.GetValue(Residual),
            Mixer = parse.GetValue(Mixer)!, HeadDim = parse.GetValue(HeadDim), Preset = parse.GetValue(Preset)!.Trim().ToLowerInvariant(),
            Attention = parse.GetValue(Attention)!.Trim().ToLowerInvariant(),
        };
    }

    internal sealed class TrainOptions
    {
        private static readonly RecTrainOptions D = new();
        public readonly Option<int> Epochs = new("--epochs") { Description = "maximum epochs", DefaultValueFactory = _ => D.Epochs };
        public readonly Option<int> Patience = new("--patience") { Description = "stop after this many epochs without a better validation ndcg@10", DefaultValueFactory = _ => D.Patience };
        public readonly Option<int> Batch = new("--batch") { Description = "training targets per step (all-positions: about this many targets' worth of user windows)", DefaultValueFactory = _ => D.Batch };
        public readonly Option<float> Lr = new("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => D.LearningRate };
        public readonly Option<string> Objective = new("--objective") { Description = "all-positions (one causal forward per user, fast) | recbole (every prefix one sample)", DefaultValueFactory = _ => RecTrainOptions.Name(D.Objective) };
        public readonly Option<long> Seed = new("--seed") { Description = "seed for weights, order and dropout", DefaultValueFactory = _ => D.Seed };
        public readonly Option<bool> Resume = new("--resume") { Description = "continue from the checkpoint in the output folder" };
        public readonly Option<long?> StopAfter = new("--stop-after") { Description = "stop with a checkpoint after this many steps of this invocation (as Ctrl-C would)" };
        public readonly Option<bool> Json = new("--json") { Description = "print one JSON object with the results as the last line" };
        public readonly Option<string> Device = DeviceOption.Create();

        public IEnumerable<Option> All => [Epochs, Patience, Batch, Lr, Objective, Seed, Resume, StopAfter, Json, Device];

        /// <summary>Everything a training run needs but its model kind and output folder; the device is checked first.</summary>
        public RecTrainSettings Get(ParseResult parse, DataOptions d, ModelOptions m, bool withKind, Option<string?> output)
        {
            var device = DeviceOption.Use(parse, Device);
            return new RecTrainSettings
            {
                Data = d.Get(parse), Model = m.Get(parse, withKind), OutputDirectory = parse.GetValue(output), Resume = parse.GetValue(Resume), Device = device,
                Training = new RecTrainOptions
                {
                    Epochs = parse.GetValue(Epochs), Patience = parse.GetValue(Patience), Batch = parse.GetValue(Batch), LearningRate = parse.GetValue(Lr),
                    Objective = RecTrainOptions.ParseObjective(parse.GetValue(Objective)!), Seed = parse.GetValue(Seed), StopAfter = parse.GetValue(StopAfter),
                },
            };
        }
    }

    public static Option<string> CheckpointOpt() => new("--checkpoint") { Description = "a model directory (written by `mamba4 rec train`, or a fixture)", Required = true };

    public static Option<string?> KindOpt() => new("--model") { Description = "mamba4rec | sasrec | bert4rec | gru4rec, when config.json does not say" };
}
