using Mamba4.Training;

namespace Mamba4.Tasks;

/// <summary>How a training run shows its progress: the tool draws a bar in a terminal; elsewhere, lines.</summary>
public interface IRunProgress
{
    /// <summary>Runs <paramref name="run"/> while following <paramref name="trainer"/>'s steps up to <paramref name="steps"/>;
    /// <paramref name="describe"/> gives the run-specific status (loss, metrics, throughput); <paramref name="fillAtEnd"/> shows the
    /// run as complete when it ends early (early stopping).</summary>
    T Follow<T>(string name, Trainer trainer, long steps, Func<T> run, Func<StepReport, string> describe, bool fillAtEnd = false);
}
