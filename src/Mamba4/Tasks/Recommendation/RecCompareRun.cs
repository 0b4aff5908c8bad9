namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// `mamba4 rec compare`: the models trained one after the other on the same data and protocol, each in its own
/// sub-folder as `rec train` would, a table row on the log as each finishes. Every model's settings and the resume
/// guard of every sub-folder are checked before anything is trained.
/// </summary>
public static class RecCompareRun
{
    public static RecCompareResult Run(RecCompareSettings s, StopSignal stop, TextWriter log)
    {
        s.Validate();
        var kinds = s.Models.Select(RecModels.ParseKind).ToArray();
        var root = RunDirectory.Open(s.OutputOrDefault, kinds, s.Shared.Resume, log);
        var dirs = kinds.Select(root.Child).ToArray();
        var data = s.Shared.Data.Load(log);
        var done = new List<RecRunResult>();
        for (int i = 0; i < kinds.Length; i++)
        {
            var r = RecTrainingRun.Train(s.For(kinds[i]), data, dirs[i], stop, log);
            if (r.Train.Interrupted)
            {
                log.WriteLine($"stopped during {kinds[i]}; checkpoint written. Continue with --resume.");
                return new RecCompareResult(done, Interrupted: true, s.Shared.Training.EvalBatch);
            }
            done.Add(r);
            log.WriteLine(RecCompareResult.Header + "\n" + RecCompareResult.Row(r));   // each model's row as soon as it is done
        }
        return new RecCompareResult(done, Interrupted: false, s.Shared.Training.EvalBatch);
    }
}
