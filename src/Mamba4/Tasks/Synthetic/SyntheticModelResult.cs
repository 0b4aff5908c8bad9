using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.IO;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>One trained model's outcome: its name, the trainer's result and the final accuracies (by "accuracy", "accuracy_4x", …).</summary>
public sealed record SyntheticModelResult(string Name, SyntheticOptions Options, TrainResult Train, IReadOnlyDictionary<string, double> Final);
