using System.CommandLine;
using Mamba4.Tasks;
using Mamba4.Tasks.Recommendation;

namespace Mamba4.Cli;

/// <summary>`mamba4 rec train`: one sequential recommender, early stopping on validation, test metrics of the best model.</summary>
internal static class RecTrainCommand
{
    public static Command Create()
    {
        var d = new RecCommand.DataOptions();
        var m = new RecCommand.ModelOptions();
        var t = new RecCommand.TrainOptions();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/rec-<model>)" };
        var cmd = new Command("train", """
            Train a sequential recommender: validation (full ranking) after every epoch, early stopping on
            validation ndcg@10, the best model kept in <out>/model (config.json + model.safetensors +
            item_tokens.json), test metrics of that model at the end. Ctrl-C writes a checkpoint; --resume continues.
            Also writes <out>/checkpoint.safetensors, metrics.jsonl and run.json.

            Examples:
              mamba4 rec train
              mamba4 rec train --data Beauty.txt --format seq --json
              mamba4 rec train --data ml-100k/u.data --format ml --max-len 200 --model sasrec
            """);
        foreach (var o in d.All.Append(m.Model).Concat(m.Sizes).Concat(t.All).Append(output)) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var settings = t.Get(parse, d, m, withKind: true, output);
            using var stop = new StopSignal();
            var result = RecTrainingRun.Run(settings, stop, Console.Error);
            if (result.Train.Interrupted) return 130;
            Console.WriteLine(result.Summary);
            if (parse.GetValue(t.Json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }
}
