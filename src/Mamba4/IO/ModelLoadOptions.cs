namespace Mamba4.IO;

/// <summary>How a model directory is loaded (<see cref="ModelFiles.Load{T}"/> and the loaders built on it).</summary>
public sealed record ModelLoadOptions
{
    public static ModelLoadOptions Default { get; } = new();

    /// <summary>
    /// Weights holding NaN or ±Inf: false (the default) refuses them, naming the tensor and the first bad index;
    /// true loads them and reports each such tensor through <see cref="Warn"/> (the CLI's --allow-nonfinite).
    /// </summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>Receives warnings (non-finite weights let through by <see cref="AllowNonFinite"/>); null drops them.</summary>
    public Action<string>? Warn { get; init; }

    /// <summary>The most host memory a model may need, in bytes; null: what the runtime reports available
    /// (<see cref="GC.GetGCMemoryInfo()"/>.TotalAvailableMemoryBytes — physical memory or the container's limit).</summary>
    public long? HostMemoryLimit { get; init; }

    /// <summary>The type nn.Linear / nn.Embedding weights (and lm_head) are kept in: F32, BF16 or F16 (--dtype); null keeps the
    /// checkpoint's own (BF16 stays BF16, F32 F32, a quantized checkpoint I8). Everything else is F32. See <see cref="ModelFiles.WeightType"/>.</summary>
    public Tensors.DType? WeightDType { get; init; }

    /// <summary>Where the weights go (the --device of the command); its free memory bounds what may be loaded.</summary>
    public Tensors.Device Device { get; init; } = Tensors.Device.Cpu;
}
