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
    public TrainerOptions Trainer { get; init; } = new() { Steps = 2000, LearningRate = 5e-3f, WarmupSteps = 50 };
    /// <summary>Also train the time-invariant twin (B, C, Δ input-independent) on the same budget.</summary>
    public bool Ablation { get; init; } = true;
    /// <summary>Held-out sequences for the final accuracy at the training length, and at each longer length.</summary>
    public int FinalSamples { get; init; } = 512;
    public int ExtrapolationSamples { get; init; } = 128;
    public string OutputDirectory { get; init; } = "";
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;
}
