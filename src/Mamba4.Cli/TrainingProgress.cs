using Mamba4.Tasks;
using Mamba4.Training;
using Spectre.Console;

namespace Mamba4.Cli;

/// <summary>A progress bar in an interactive terminal; the library's status lines when output is redirected.</summary>
internal sealed class TrainingProgress : IRunProgress
{
    public static IRunProgress ForConsole { get; } = AnsiConsole.Profile.Capabilities.Interactive ? new TrainingProgress() : new LineProgress();

    public T Follow<T>(string name, Trainer trainer, long steps, Func<T> run, Func<StepReport, string> describe, bool fillAtEnd = false)
    {
        T? result = default;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var bar = ctx.AddTask(Markup.Escape(name), maxValue: steps);
                bar.Value = trainer.Step;
                void OnStep(StepReport r)
                {
                    bar.Value = r.Step;
                    bar.Description = Markup.Escape($"{name}  {describe(r)}");
                }
                trainer.StepDone += OnStep;
                try { result = run(); }
                finally { trainer.StepDone -= OnStep; }
                if (fillAtEnd) bar.Value = steps;
            });
        return result!;
    }

}
