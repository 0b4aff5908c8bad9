using System.CommandLine;
using System.Globalization;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec score`: every item's score after a history, one full forward.</summary>
internal static class RecScoreCommand
{
    public static Command Create()
    {
        var ckpt = RecCommand.CheckpointOpt();
        var kind = RecCommand.KindOpt();
        var history = new Option<string>("--history") { Description = "the user's items, oldest first, comma-separated", Required = true };
        var ids = new Option<bool>("--ids") { Description = "the history gives item ids, not the original item tokens" };
        var device = DeviceOption.Create();
        var allowNonFinite = AllowNonFiniteOption.Create();
        var cmd = new Command("score", """
            The score of every item id 0..n_items-1 (0 = padding) after a history, one full forward, comma-separated
            on the last line of stdout. History items are the original item tokens of a trained model, or item ids
            (fixtures, or --ids).

            Example:
              mamba4 rec score --checkpoint fixtures/mamba4rec-1layer --history 5,9,2
            """);
        foreach (var o in new Option[] { ckpt, kind, history, ids, device, allowNonFinite }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var target = DeviceOption.Use(parse, device);
            using var model = RecModels.Load(parse.GetValue(ckpt)!, parse.GetValue(kind), options: AllowNonFiniteOption.LoadOptions(parse, allowNonFinite, target));
            var h = RecRecommend.ParseHistory(parse.GetValue(history)!, model, parse.GetValue(ids));
            var scores = RecRecommend.FullScores(model, h);
            Console.Error.WriteLine($"{model.Kind}: {model.NItems} item scores after {h.Length} item(s)");
            Console.WriteLine(string.Join(",", scores.Select(s => s.ToString("R", CultureInfo.InvariantCulture))));
            return 0;
        });
        return cmd;
    }
}
