using System.CommandLine;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec recommend`: the top items after one user's history, or for every user of a file.</summary>
internal static class RecRecommendCommand
{
    public static Command Create()
    {
        var d = new RecCommand.DataOptions();
        var ckpt = RecCommand.CheckpointOpt();
        var kind = RecCommand.KindOpt();
        var history = new Option<string?>("--history") { Description = "the user's items, oldest first, comma-separated" };
        var user = new Option<string?>("--user") { Description = "a user of --data: the whole history in the file" };
        var ids = new Option<bool>("--ids") { Description = "the history gives item ids, not the original item tokens" };
        var top = new Option<int>("--top") { Description = "how many items", DefaultValueFactory = _ => new RecRecommendSettings { Checkpoint = "" }.Top };
        var exclude = new Option<bool>("--exclude-history") { Description = "never recommend an item already in the history" };
        var histories = new Option<string?>("--histories") { Description = "batch mode: a file of user histories, one line per user: user item item ... (oldest first)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object (items, ids, scores) as the last line; batch mode: one JSON object per user" };
        var device = DeviceOption.Create();
        var allowNonFinite = AllowNonFiniteOption.Create();
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
        foreach (var o in d.All.Concat([ckpt, kind, history, user, histories, ids, top, exclude, json, device])) cmd.Options.Add(o);
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            var settings = new RecRecommendSettings
            {
                Device = DeviceOption.Use(parse, device), Load = AllowNonFiniteOption.LoadOptions(parse, allowNonFinite), Checkpoint = parse.GetValue(ckpt)!, Kind = parse.GetValue(kind), Data = d.Get(parse),
                History = parse.GetValue(history), User = parse.GetValue(user), Histories = parse.GetValue(histories), Ids = parse.GetValue(ids),
                Top = parse.GetValue(top), ExcludeHistory = parse.GetValue(exclude), Json = parse.GetValue(json),
            };
            using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };   // batch mode writes many lines
            RecRecommendRun.Run(settings, stdout, Console.Error);
            return 0;
        });
        return cmd;
    }
}
