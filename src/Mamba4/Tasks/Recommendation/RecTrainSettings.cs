using Mamba4.Tensors;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Every setting of `mamba4 rec train`, with its default (the CLI's options take their defaults from here).</summary>
public sealed record RecTrainSettings
{
    public RecDataSettings Data { get; init; } = new();
    public RecModelOptions Model { get; init; } = new();
    /// <summary>The protocol; its OutputDirectory is set by the run (the model's folder).</summary>
    public RecTrainOptions Training { get; init; } = new();
    /// <summary>Output folder; null = runs/rec-&lt;model&gt;.</summary>
    public string? OutputDirectory { get; init; }
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;

    public string OutputOrDefault => OutputDirectory ?? Path.Combine("runs", "rec-" + RecModels.ParseKind(Model.Kind));

    public void Validate()
    {
        Model.Validate();
        Training.Validate();
    }
}
