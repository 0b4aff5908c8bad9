using System.CommandLine;
using Mamba4.Tasks;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec compare`: Mamba4Rec, SASRec, BERT4Rec and GRU4Rec on the same data and protocol, one table.</summary>
internal static class RecCompareCommand
{
    public static Command Create()
    {
        var d = new RecCommand.DataOptions();
        var m = new RecCommand.ModelOptions();
        var t = new RecCommand.TrainOptions();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/rec-compare; one sub-folder per model)" };
        var models = new Option<string>("--models") { Description = "comma-separated models to train", DefaultValueFactory = _ => string.Join(",", new RecCompareSettings().Models) };
        var cmd = new Command("compare", """
            Train Mamba4Rec, SASRec, BERT4Rec and GRU4Rec on the same data and protocol and print one table: test
            hit/ndcg/mrr@10, epochs to the best validation, seconds per epoch, peak memory, inference ms per batch.

            Example:
              mamba4 rec compare --data ml-100k/u.data --format ml --max-len 200
            """);
        foreach (var o in d.All.Concat(m.Sizes).Concat(t.All).Append(output).Append(models)) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var settings = new RecCompareSettings
            {
                Shared = t.Get(parse, d, m, withKind: false, output),
                Models = parse.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            using var stop = new StopSignal();
            var result = RecCompareRun.Run(settings, stop, Console.Error);
            if (result.Interrupted) return 130;
            result.WriteTable(Console.Out);
            Console.Error.WriteLine(result.Legend);
            if (parse.GetValue(t.Json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }
}
