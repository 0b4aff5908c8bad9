using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.IO;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>Everything `mamba4 train` runs: the task and model, the trainer, the ablation twin, the output folder and device.</summary>
public sealed record SyntheticRunSettings
{
    public SyntheticOptions Model { get; init; } = new();
    public TrainerOptions Trainer { get; init; } = SyntheticTraining.Preset("selective-copying").Trainer;
    /// <summary>Also train the time-invariant twin (B, C, Δ input-independent) on the same budget.</summary>
    public bool Ablation { get; init; } = true;
    /// <summary>Also train the GPT twin (same width, depth, data and budget); null = for induction heads only.</summary>
    public bool? TransformerBaseline { get; init; }
    /// <summary>Induction heads: the test lengths (null = 2^6 … 2^20) and held-out sequences per length (0 = <see cref="InductionEvaluation.SamplesFor"/>).</summary>
    public IReadOnlyList<long>? Lengths { get; init; }
    public int Samples { get; init; }
    /// <summary>Selective copying: held-out sequences for the final accuracy.</summary>
    public int FinalSamples { get; init; } = 512;
    public string OutputDirectory { get; init; } = "";
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;
}
