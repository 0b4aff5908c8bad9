using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Tensors;
using Mamba4.Text;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>Every setting of `mamba4 lm train`, with its default (the CLI's options take their defaults from here).</summary>
public sealed record LmTrainSettings
{
    /// <summary>A UTF-8 text file; null = the built-in generated corpus.</summary>
    public string? Data { get; init; }
    /// <summary>"char" (a character vocabulary built from the text) or a tokenizer.json (or a folder holding one).</summary>
    public string Tokenizer { get; init; } = "char";
    /// <summary>mamba | transformer.</summary>
    public string Model { get; init; } = "mamba";
    /// <summary>Mamba's mixer: mamba1 (selective scan) or mamba2 (SSD); saved in config.json (model_type mamba / mamba2).</summary>
    public string Mixer { get; init; } = "mamba1";
    /// <summary>Mamba-2 head width; null = <see cref="Models.MambaConfig.DefaultHeadDim"/>.</summary>
    public int? HeadDim { get; init; }
    /// <summary>A preset of <see cref="LanguageModeling.Sizes"/>.</summary>
    public string Size { get; init; } = "small";
    public int SeqLen { get; init; } = 128;
    public int Batch { get; init; } = 16;
    public long Steps { get; init; } = 4000;
    public float LearningRate { get; init; } = 3e-3f;
    public long WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; } = 0.1f;
    public double ClipNorm { get; init; } = 1.0;
    public long Seed { get; init; } = 1;
    public int EvalEvery { get; init; } = 250;
    public int CheckpointEvery { get; init; } = 500;
    /// <summary>Steps between printed samples (0 = never), and each sample's length in tokens.</summary>
    public int SampleEvery { get; init; } = 1000;
    public int SampleTokens { get; init; } = 160;
    /// <summary>Validation windows of the final evaluation.</summary>
    public int FinalValidationWindows { get; init; } = 512;
    /// <summary>Stop (with a checkpoint) after this wall-clock budget.</summary>
    public double? Minutes { get; init; }
    public string? OutputDirectory { get; init; }
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>Gradient checkpointing of the Mamba-1 mixers (<see cref="Models.MambaLM.Recompute"/>): less activation
    /// memory, one more run of their conv and projections in the backward; the same gradients.</summary>
    public bool Recompute { get; init; }

    /// <summary>The trainer's share of these settings (its checks are the trainer's own: one wording for every command).</summary>
    public TrainerOptions Trainer => new()
    {
        Steps = Steps, LearningRate = LearningRate, WarmupSteps = WarmupSteps, WeightDecay = WeightDecay, ClipNorm = ClipNorm,
        Seed = Seed, CheckpointEvery = CheckpointEvery, EvalEvery = EvalEvery,
    };

    public string OutputOrDefault => OutputDirectory ?? Path.Combine("runs", $"lm-{Model}");

    public void Validate()
    {
        LanguageModeling.Size(Size);
        if (Model is not ("mamba" or "transformer")) throw new ArgumentException($"--model must be mamba or transformer, got '{Model}'");
        Models.MambaConfig.ParseMixer(Mixer);
        if (Model != "mamba" && (Mixer != "mamba1" || HeadDim is not null)) throw new ArgumentException("--mixer and --head-dim apply to --model mamba only");
        if (Recompute && (Model != "mamba" || Mixer != "mamba1")) throw new ArgumentException("--recompute applies to --model mamba --mixer mamba1 only (the layers that rerun their inner ops)");
        if (SeqLen is <= 1 or > Models.ModelLimits.Positions) throw new ArgumentException($"--seq-len must be in [2, {Models.ModelLimits.Positions}], got {SeqLen}");
        if (Batch <= 0) throw new ArgumentException($"--batch must be positive, got {Batch}");
        Training.Trainer.CheckTokensPerStep(Batch, SeqLen, "--seq-len");
        Trainer.Validate();
        if (SampleEvery < 0) throw new ArgumentException($"--sample-every must be ≥ 0, got {SampleEvery}");
        if (Minutes is { } m && !(m > 0)) throw new ArgumentException($"--minutes must be positive, got {m}");
        if (Data is not null && !File.Exists(Data)) throw new FileNotFoundException($"--data: {Data} not found", Data);
    }
}
