using System.CommandLine;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec eval`: full-ranking metrics of a saved model on a dataset.</summary>
internal static class RecEvalCommand
{
    public static Command Create()
    {
        var d = new RecCommand.DataOptions();
        var ckpt = RecCommand.CheckpointOpt();
        var kind = RecCommand.KindOpt();
        var maxLen = new Option<int?>("--max-len") { Description = "most recent items a prediction sees (default: the model's)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var breakdown = new Option<bool>("--breakdown") { Description = "also print test hit/ndcg/mrr@10 by history length, by the target's training popularity and by how often the target occurs in the last max_len items of the history" };
        var ranksFile = new Option<string?>("--ranks") { Description = "write each test user's rank to this TSV file (user, history_length, target, target_train_count, rank)" };
        var device = DeviceOption.Create();
        var allowNonFinite = AllowNonFiniteOption.Create();
        var cmd = new Command("eval", """
            Full-ranking test (and validation) metrics of a saved model on a dataset, split leave-one-out as in training.

            Example:
              mamba4 rec eval --checkpoint runs/rec-mamba4rec/model --data Beauty.txt --format seq --breakdown
            """);
        foreach (var o in d.All.Concat([ckpt, kind, maxLen, json, breakdown, ranksFile, device, allowNonFinite])) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var settings = new RecEvalSettings
            {
                Device = DeviceOption.Use(parse, device), Load = AllowNonFiniteOption.LoadOptions(parse, allowNonFinite), Checkpoint = parse.GetValue(ckpt)!, Kind = parse.GetValue(kind), Data = d.Get(parse),
                MaxLen = parse.GetValue(maxLen), Breakdown = parse.GetValue(breakdown), RanksFile = parse.GetValue(ranksFile),
            };
            var result = RecEvalRun.Run(settings, Console.Out, Console.Error);
            if (parse.GetValue(json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }
}
