using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// One trained model's outcome: its name, the trainer's result, the final accuracies (by "accuracy", …) and, for
/// induction heads, the accuracy at each test length evaluated (lengths not run are absent).
/// </summary>
public sealed record SyntheticModelResult(string Name, SyntheticOptions Options, TrainResult Train, IReadOnlyDictionary<string, double> Final,
    IReadOnlyDictionary<long, LengthAccuracy> ByLength);
