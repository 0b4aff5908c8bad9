using Mamba4.Training;
using Spectre.Console;

namespace Mamba4.Cli;

/// <summary>A progress bar (interactive terminal) or periodic lines (redirected output) for a training run.</summary>
internal static class TrainingProgress
{
    /// <param name="describe">The run-specific part of the status (loss, metrics); tokens/s is added here.</param>
    public static TrainResult Run(string name, Trainer trainer, long steps, Func<bool> stop, Func<StepReport, string> describe)
    {
        string Describe(StepReport r) => $"{name}  {describe(r)}  {r.TokensPerSecond / 1000:F1}k tok/s";
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            long every = Math.Max(1, steps / 20);
            var start = DateTime.UtcNow;
            long first = trainer.Step;
            trainer.StepDone += r =>
            {
                if (r.Step % every != 0 && r.Step != steps) return;
                double elapsed = (DateTime.UtcNow - start).TotalSeconds, eta = elapsed / Math.Max(1, r.Step - first) * (steps - r.Step);
                Console.Error.WriteLine($"  step {r.Step}/{steps}  {Describe(r)}  eta {eta:F0} s{(r.Skipped ? "  (skipped: non-finite)" : "")}");
            };
            return trainer.Run(stop);
        }
        return Bar(name, trainer, steps, () => trainer.Run(stop), Describe, fillAtEnd: false);
    }

    /// <summary>Runs <paramref name="run"/> under an interactive progress bar that follows <paramref name="trainer"/>'s steps;
    /// <paramref name="fillAtEnd"/> shows the bar full when the run ends early (early stopping).</summary>
    public static T Bar<T>(string name, Trainer trainer, long steps, Func<T> run, Func<StepReport, string> describe, bool fillAtEnd)
    {
        T? result = default;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var bar = ctx.AddTask(Markup.Escape(name), maxValue: steps);
                bar.Value = trainer.Step;
                trainer.StepDone += r =>
                {
                    bar.Value = r.Step;
                    bar.Description = Markup.Escape(describe(r));
                };
                result = run();
                if (fillAtEnd) bar.Value = steps;
            });
        return result!;
    }
}
