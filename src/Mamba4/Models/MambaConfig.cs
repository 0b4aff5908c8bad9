using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;

namespace Mamba4.Models;

/// <summary>
/// Sizes and options of a Mamba model. Reads and writes the Hugging Face <c>config.json</c> field
/// names (hidden_size, state_size, conv_kernel, time_step_rank, intermediate_size, use_bias, ...);
/// mamba_ssm's names (d_model, n_layer, d_state, d_conv, dt_rank, ...) are accepted on read too.
/// </summary>
public sealed record MambaConfig
{
    public int DModel { get; init; } = 768;
    public int NLayer { get; init; } = 24;
    public int DState { get; init; } = 16;
    public int DConv { get; init; } = 4;
    public int Expand { get; init; } = 2;
    /// <summary>d_inner; null means Expand·DModel.</summary>
    public int? IntermediateSize { get; init; }
    /// <summary>dt_rank; null means "auto" = ⌈DModel/16⌉.</summary>
    public int? TimeStepRank { get; init; }
    public double DtMin { get; init; } = 0.001;
    public double DtMax { get; init; } = 0.1;
    /// <summary>"random" (log-uniform in [DtMin, DtMax]) or "constant".</summary>
    public string DtInit { get; init; } = "random";
    public double DtScale { get; init; } = 1.0;
    public double DtInitFloor { get; init; } = 1e-4;
    public bool ConvBias { get; init; } = true;
    public bool Bias { get; init; }
    public int VocabSize { get; init; } = 50280;
    public bool TieEmbeddings { get; init; } = true;
    public float NormEpsilon { get; init; } = 1e-5f;
    public bool ResidualInFp32 { get; init; } = true;
    /// <summary>false: B, C and Δ are input-independent learned parameters (time-invariant, S4-style ablation).</summary>
    public bool Selective { get; init; } = true;
    /// <summary>Learned positional embeddings of this many positions (0 = none).</summary>
    public int MaxPositionEmbeddings { get; init; }
    public float Dropout { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public bool RescalePrenormResidual { get; init; } = true;
    /// <summary>
    /// Falcon-Mamba (HF model_type "falcon_mamba", <c>mixer_rms_eps</c>): ε of the weightless RMS norms on dt, B and C
    /// after x_proj. null = plain Mamba.
    /// </summary>
    public float? MixerRmsEps { get; init; }

    /// <summary>The HF model_type this config reads as and writes: "falcon_mamba" when <see cref="MixerRmsEps"/> is set, else "mamba".</summary>
    public string ModelType => MixerRmsEps is null ? "mamba" : "falcon_mamba";

    public int DInner => IntermediateSize ?? Expand * DModel;
    public int DtRank => TimeStepRank ?? (DModel + 15) / 16;

    /// <summary>Checks every size against <see cref="ModelLimits"/> and the options' ranges; errors name <paramref name="source"/> and the field.</summary>
    public void Validate(string source = "config")
    {
        void Size(string field, long v, int max)
        {
            if (v < 1 || v > max) throw new FormatException($"{source}: field '{field}': expected a positive integer ≤ {max}, got {v}");
        }
        Size("hidden_size", DModel, ModelLimits.Width);
        Size("num_hidden_layers", NLayer, ModelLimits.Layers);
        Size("state_size", DState, ModelLimits.StateSize);
        Size("conv_kernel", DConv, ModelLimits.ConvKernel);
        Size("expand", Expand, ModelLimits.Expand);
        Size("intermediate_size", IntermediateSize ?? (long)Expand * DModel, ModelLimits.InnerWidth);
        Size("time_step_rank", DtRank, ModelLimits.Width);
        Size("vocab_size", VocabSize, ModelLimits.Vocabulary);
        if (MaxPositionEmbeddings is < 0 or > ModelLimits.Positions)
            throw new FormatException($"{source}: field 'max_position_embeddings': expected an integer from 0 to {ModelLimits.Positions}, got {MaxPositionEmbeddings}");
        if (DtInit is not ("random" or "constant")) throw new FormatException($"{source}: field 'time_step_init_scheme': expected \"random\" or \"constant\", got \"{DtInit}\"");
        if (!(DtMin > 0 && DtMax >= DtMin)) throw new FormatException($"{source}: need 0 < time_step_min ≤ time_step_max, got {DtMin}, {DtMax}");
        if (MixerRmsEps is not null && !(MixerRmsEps > 0)) throw new FormatException($"{source}: field 'mixer_rms_eps': expected a positive number, got {MixerRmsEps}");
        if (MixerRmsEps is not null && !Selective) throw new FormatException($"{source}: field 'mixer_rms_eps' needs a selective model (selective: true)");
        if (Dropout is < 0 or >= 1) throw new FormatException($"{source}: field 'dropout': expected a probability, 0 ≤ p < 1, got {Dropout}");
    }

    /// <summary>Reads a config.json (see <see cref="ConfigReader"/> for its errors).</summary>
    public static MambaConfig FromJsonFile(string path) => FromConfig(ConfigReader.Load(path));

    public static MambaConfig FromJson(string json, string source = "config") => FromConfig(ConfigReader.Parse(json, source));

    /// <summary>A config.json already opened (see <see cref="ConfigReader"/> for its errors).</summary>
    public static MambaConfig FromConfig(ConfigReader r)
    {
        var d = new MambaConfig();
        // Falcon-Mamba is Mamba-1 plus mixer_rms_eps (HF's default 1e-6 when the field is absent).
        bool falcon = r.Has("model_type") && r.String("model_type") == "falcon_mamba";
        double? rmsEps = r.Positive("mixer_rms_eps");
        var c = new MambaConfig
        {
            DModel = r.Size(ModelLimits.Width, "hidden_size", "d_model") ?? d.DModel,
            NLayer = r.Size(ModelLimits.Layers, "num_hidden_layers", "n_layer") ?? d.NLayer,
            DState = r.Size(ModelLimits.StateSize, "state_size", "d_state") ?? d.DState,
            DConv = r.Size(ModelLimits.ConvKernel, "conv_kernel", "d_conv") ?? d.DConv,
            Expand = r.Size(ModelLimits.Expand, "expand") ?? d.Expand,
            IntermediateSize = r.Size(ModelLimits.InnerWidth, "intermediate_size", "d_inner"),
            TimeStepRank = r.Holds("auto", "time_step_rank", "dt_rank") ? null : r.Size(ModelLimits.Width, "time_step_rank", "dt_rank"),
            DtMin = r.Positive("time_step_min", "dt_min") ?? d.DtMin,
            DtMax = r.Positive("time_step_max", "dt_max") ?? d.DtMax,
            DtInit = r.Choice(["random", "constant"], "time_step_init_scheme", "dt_init") ?? d.DtInit,
            DtScale = r.Number("time_step_scale", "dt_scale") ?? d.DtScale,
            DtInitFloor = r.NonNegative("time_step_floor", "dt_init_floor") ?? d.DtInitFloor,
            ConvBias = r.Bool("use_conv_bias", "conv_bias") ?? d.ConvBias,
            Bias = r.Bool("use_bias", "bias") ?? d.Bias,
            VocabSize = r.Size(ModelLimits.Vocabulary, "vocab_size") ?? d.VocabSize,
            TieEmbeddings = r.Bool("tie_word_embeddings", "tie_embeddings") ?? d.TieEmbeddings,
            NormEpsilon = (float)(r.Positive("layer_norm_epsilon", "norm_epsilon") ?? d.NormEpsilon),
            ResidualInFp32 = r.Bool("residual_in_fp32") ?? d.ResidualInFp32,
            Selective = r.Bool("selective") ?? d.Selective,
            MaxPositionEmbeddings = r.Count(ModelLimits.Positions, "max_position_embeddings") ?? 0,
            Dropout = r.Probability("dropout") ?? 0,
            InitializerRange = r.NonNegative("initializer_range") ?? d.InitializerRange,
            RescalePrenormResidual = r.Bool("rescale_prenorm_residual") ?? d.RescalePrenormResidual,
            MixerRmsEps = (float?)rmsEps ?? (falcon ? 1e-6f : null),
        };
        c.Validate(r.Source);
        return c;
    }

    /// <summary>HF-compatible config.json (model_type "mamba", or "falcon_mamba" with mixer_rms_eps), plus Mamba4's own fields.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(MixerRmsEps is null ? "MambaForCausalLM" : "FalconMambaForCausalLM"),
            ["model_type"] = ModelType,
            ["hidden_size"] = DModel,
            ["num_hidden_layers"] = NLayer,
            ["state_size"] = DState,
            ["conv_kernel"] = DConv,
            ["expand"] = Expand,
            ["intermediate_size"] = DInner,
            ["time_step_rank"] = DtRank,
            ["time_step_min"] = DtMin,
            ["time_step_max"] = DtMax,
            ["time_step_init_scheme"] = DtInit,
            ["time_step_scale"] = DtScale,
            ["time_step_floor"] = DtInitFloor,
            ["use_conv_bias"] = ConvBias,
            ["use_bias"] = Bias,
            ["vocab_size"] = VocabSize,
            ["tie_word_embeddings"] = TieEmbeddings,
            ["layer_norm_epsilon"] = NormEpsilon,
            ["residual_in_fp32"] = ResidualInFp32,
            ["initializer_range"] = InitializerRange,
            ["rescale_prenorm_residual"] = RescalePrenormResidual,
            ["hidden_act"] = "silu",
            ["selective"] = Selective,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["dropout"] = Dropout,
        };
        if (MixerRmsEps is float eps) o["mixer_rms_eps"] = eps;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
