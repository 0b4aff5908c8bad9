using Mamba4.Training;

namespace Mamba4.Tasks;

/// <summary>About twenty status lines per run on a writer (standard error by default), with tokens/s and an ETA.</summary>
public sealed class LineProgress(TextWriter? writer = null) : IRunProgress
{
    private readonly TextWriter _writer = writer ?? Console.Error;

    public T Follow<T>(string name, Trainer trainer, long steps, Func<T> run, Func<StepReport, string> describe, bool fillAtEnd = false)
    {
        long every = Math.Max(1, steps / 20);
        var start = DateTime.UtcNow;
        long first = trainer.Step;
        void OnStep(StepReport r)
        {
            if (r.Step % every != 0 && r.Step != steps) return;
            double elapsed = (DateTime.UtcNow - start).TotalSeconds, eta = elapsed / Math.Max(1, r.Step - first) * (steps - r.Step);
            _writer.WriteLine($"  step {r.Step}/{steps}  {name}  {describe(r)}  eta {eta:F0} s{(r.Skipped ? "  (skipped: non-finite)" : "")}");
        }
        trainer.StepDone += OnStep;
        try { return run(); }
        finally { trainer.StepDone -= OnStep; }
    }
}
