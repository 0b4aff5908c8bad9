namespace Mamba4.Models;

/// <summary>
/// The largest size a model configuration may declare, for every kind of model (config.json, forecaster.json and
/// the command-line sizes). Generous enough for 7B-parameter models (hidden 4096, intermediate 14336, 64 layers,
/// vocabulary 256k, 128k positions); small enough that a corrupt or hostile file is refused before anything is
/// allocated. Sizes within these bounds can still need more memory than there is: loading checks that separately
/// (<see cref="IO.ModelFiles.CheckMemory"/>).
/// </summary>
public static class ModelLimits
{
    /// <summary>hidden_size / d_model / n_embd / embedding_size.</summary>
    public const int Width = 65_536;
    /// <summary>intermediate_size / d_inner (expand · d_model), inner_size, d_ff.</summary>
    public const int InnerWidth = 262_144;
    /// <summary>num_hidden_layers / n_layer / n_layers / num_layers / layers.</summary>
    public const int Layers = 1_024;
    /// <summary>vocab_size, n_items, and the outputs of a forecaster's projection (horizon · variables).</summary>
    public const int Vocabulary = 4_194_304;
    /// <summary>state_size / d_state.</summary>
    public const int StateSize = 1_024;
    /// <summary>conv_kernel / d_conv.</summary>
    public const int ConvKernel = 1_024;
    /// <summary>expand (d_inner = expand · d_model).</summary>
    public const int Expand = 64;
    /// <summary>n_head / n_heads / heads.</summary>
    public const int Heads = 1_024;
    /// <summary>max_position_embeddings / n_positions / max_seq_length, and a forecaster's input length, horizon and moving average.</summary>
    public const int Positions = 1_048_576;
    /// <summary>A forecaster's variables, and its calendar features.</summary>
    public const int Variables = 65_536;

    /// <summary>Throws <see cref="ArgumentException"/> "<paramref name="name"/> must be a positive integer ≤ max, got v" unless 1 ≤ v ≤ max.</summary>
    public static void Check(string name, long value, int max)
    {
        if (value < 1 || value > max) throw new ArgumentException($"{name} must be a positive integer ≤ {max}, got {value}");
    }
}
