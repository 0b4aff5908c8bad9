using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;

namespace Mamba4.Models;

/// <summary>Which mixer the blocks hold: Mamba-1's selective scan (<see cref="Nn.MambaMixer"/>) or Mamba-2's SSD (<see cref="Nn.Mamba2Mixer"/>).</summary>
public enum MixerKind { Mamba1, Mamba2 }

/// <summary>
/// Sizes and options of a Mamba model. Reads and writes the Hugging Face <c>config.json</c> field
/// names (hidden_size, state_size, conv_kernel, time_step_rank, intermediate_size, use_bias, ...);
/// mamba_ssm's names (d_model, n_layer, d_state, d_conv, dt_rank, ...) are accepted on read too, at the top level or
/// in its <c>ssm_cfg</c> (whose <c>layer</c>, "Mamba1" or "Mamba2", picks the mixer when there is no model_type).
/// Mamba-2 (HF model_type "mamba2", <c>Mamba2Config</c>) adds heads, head_dim, n_groups, chunk_size,
/// time_step_limit and the gated RMSNorm; the backbone, block, state and generation are the same code.
/// </summary>
public sealed record MambaConfig
{
    /// <summary>The model types this code implements (config.json "model_type").</summary>
    public static readonly string[] ModelTypes = ["mamba", "falcon_mamba", "mamba2"];

    public MixerKind Mixer { get; init; } = MixerKind.Mamba1;
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

    /// <summary>Mamba-2: the width of a head (head_dim / headdim); the heads are d_inner / head_dim unless <see cref="NumHeads"/> says.</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>Mamba-2: num_heads (HF requires num_heads · head_dim = expand · hidden_size); null = d_inner / head_dim.</summary>
    public int? NumHeads { get; init; }
    /// <summary>Mamba-2: groups of heads sharing B and C (n_groups / ngroups).</summary>
    public int NGroups { get; init; } = 1;
    /// <summary>Mamba-2: chunk length of the SSD scan (the result does not depend on it beyond rounding).</summary>
    public int ChunkSize { get; init; } = 256;
    /// <summary>Mamba-2: time_step_limit / dt_limit, the clamp of Δ after the softplus; (0, ∞) = none.</summary>
    public double TimeStepLimitMin { get; init; }
    public double TimeStepLimitMax { get; init; } = double.PositiveInfinity;
    /// <summary>
    /// Mamba-2 gated RMSNorm: false (transformers', mamba_ssm's default) = norm(y·silu(z)); true = norm(y)·silu(z). Read
    /// from mamba_ssm's <c>ssm_cfg.norm_before_gate</c> only: transformers ignores a top-level one (Mamba-Codestral's
    /// config.json says true), and so does this code.
    /// </summary>
    public bool NormBeforeGate { get; init; }
    /// <summary>
    /// Mamba-2 gated RMSNorm: how many groups the mean square is taken over. transformers' MambaRMSNormGated takes it
    /// over the whole d_inner (1); mamba_ssm's Mamba2 per group of heads (ngroups), which its configs get.
    /// </summary>
    public int NormGroups { get; init; } = 1;

    /// <summary>The HF model_type this config reads as and writes: "mamba2", "falcon_mamba" when <see cref="MixerRmsEps"/> is set, else "mamba".</summary>
    public string ModelType => Mixer == MixerKind.Mamba2 ? "mamba2" : MixerRmsEps is null ? "mamba" : "falcon_mamba";

    public int DInner => IntermediateSize ?? Expand * DModel;
    public int DtRank => TimeStepRank ?? (DModel + 15) / 16;
    /// <summary>Mamba-2 heads.</summary>
    public int Heads => NumHeads ?? DInner / HeadDim;
    /// <summary>Channels of the causal conv: d_inner for Mamba-1; x, B and C (d_inner + 2·n_groups·state_size) for Mamba-2.</summary>
    public int ConvDim => Mixer == MixerKind.Mamba2 ? DInner + 2 * NGroups * DState : DInner;

    /// <summary>What `--mixer` accepts on the training commands.</summary>
    public static readonly string[] MixerNames = ["mamba1", "mamba2"];

    /// <summary>"mamba1" / "mamba2" (the `--mixer` option, and the "mixer" field of the rec and forecast configs).</summary>
    public static MixerKind ParseMixer(string name, string option = "--mixer") => name switch
    {
        "mamba1" => MixerKind.Mamba1,
        "mamba2" => MixerKind.Mamba2,
        _ => throw new ArgumentException($"{option} must be mamba1 or mamba2, got '{name}'"),
    };

    public static string MixerName(MixerKind kind) => kind == MixerKind.Mamba2 ? "mamba2" : "mamba1";

    /// <summary>
    /// This configuration with the mixer a training command chose. Mamba-2 gets one group, chunks of 256 capped to
    /// <paramref name="maxLength"/>, and <paramref name="headDim"/> or, when null, <see cref="DefaultHeadDim"/>.
    /// </summary>
    public MambaConfig WithMixer(MixerKind kind, int? headDim = null, int maxLength = 256, string option = "--head-dim")
    {
        if (kind == MixerKind.Mamba1) return this with { Mixer = kind };
        int h = headDim ?? DefaultHeadDim(DInner);
        if (h < 1 || DInner % h != 0) throw new ArgumentException($"{option} must divide the mixer's width expand · d_model = {DInner}, got {h}");
        if (DInner / h > ModelLimits.Heads)
            throw new ArgumentException($"{option} {h} makes {DInner / h} heads of the mixer's width {DInner}; at most {ModelLimits.Heads}");
        return this with { Mixer = kind, HeadDim = h, NumHeads = null, NGroups = 1, ChunkSize = Math.Clamp(maxLength, 1, 256) };
    }

    /// <summary>Mamba-2 head width for a model made here: the largest divisor of d_inner ≤ min(64, d_inner / 4) (64 as mamba_ssm, at least 4 heads for small widths).</summary>
    public static int DefaultHeadDim(int dInner)
    {
        for (int h = Math.Max(1, Math.Min(64, dInner / 4)); h > 1; h--)
            if (dInner % h == 0) return h;
        return 1;
    }

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
        if (Mixer == MixerKind.Mamba2) ValidateMamba2(source, Size);
    }

    private void ValidateMamba2(string source, Action<string, long, int> size)
    {
        size("head_dim", HeadDim, ModelLimits.InnerWidth);
        size("num_heads", Heads, ModelLimits.Heads);
        size("n_groups", NGroups, ModelLimits.Heads);
        size("chunk_size", ChunkSize, ModelLimits.Positions);
        if ((long)Heads * HeadDim != DInner)
            throw new FormatException($"{source}: field 'num_heads': num_heads · head_dim = {Heads} · {HeadDim} must equal expand · hidden_size = {DInner}");
        if (Heads % NGroups != 0) throw new FormatException($"{source}: field 'n_groups': the {Heads} heads must be a multiple of n_groups = {NGroups}");
        if (NormGroups < 1 || NGroups % NormGroups != 0)
            throw new FormatException($"{source}: field 'norm_groups': expected a divisor of n_groups = {NGroups}, got {NormGroups}");
        // The kernels take the limits as floats: beyond float.MaxValue they would be ∞ (every Δ ∞, NaN outputs).
        if (!(TimeStepLimitMin >= 0 && TimeStepLimitMax >= TimeStepLimitMin && TimeStepLimitMin <= float.MaxValue)
            || !(TimeStepLimitMax <= float.MaxValue || double.IsPositiveInfinity(TimeStepLimitMax)))
            throw new FormatException($"{source}: field 'time_step_limit': need 0 ≤ min ≤ max ≤ {float.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture)} (max may be Infinity), got ({TimeStepLimitMin}, {TimeStepLimitMax})");
        if (MixerRmsEps is not null) throw new FormatException($"{source}: field 'mixer_rms_eps' is Falcon-Mamba's (Mamba-1); a Mamba-2 model has none");
        if (!Selective) throw new FormatException($"{source}: field 'selective': a Mamba-2 model is always selective");
    }

    /// <summary>Reads a config.json (see <see cref="ConfigReader"/> for its errors).</summary>
    public static MambaConfig FromJsonFile(string path) => FromConfig(ConfigReader.Load(path));

    public static MambaConfig FromJson(string json, string source = "config") => FromConfig(ConfigReader.Parse(json, source));

    /// <summary>
    /// A config.json already opened (see <see cref="ConfigReader"/> for its errors). An unknown model_type, an unknown
    /// ssm_cfg.layer or a field whose value this code does not implement is a one-line error naming the field.
    /// </summary>
    public static MambaConfig FromConfig(ConfigReader r)
    {
        var d = new MambaConfig();
        // mamba_ssm keeps the mixer's fields in ssm_cfg (its layer picks Mamba1 or Mamba2); they win over the top level.
        var ssm = r.Has("ssm_cfg") ? r.Section("ssm_cfg") : null;
        var type = r.Choice(ModelTypes, "model_type");
        var layer = ssm?.Choice(["Mamba1", "Mamba2"], "layer");
        if (type is not null && layer is not null && (type == "mamba2") != (layer == "Mamba2"))
            throw r.Error($"field 'ssm_cfg.layer': \"{layer}\" contradicts model_type \"{type}\"");
        bool mamba2 = type == "mamba2" || layer == "Mamba2";
        bool mambaSsm = type is null && ssm is not null;
        Unsupported(r, ssm, mamba2);
        // Falcon-Mamba is Mamba-1 plus mixer_rms_eps (HF's default 1e-6 when the field is absent).
        double? rmsEps = r.Positive("mixer_rms_eps");
        int? Size(int max, params string[] names) => ssm?.Size(max, names) ?? r.Size(max, names);
        double? Positive(params string[] names) => ssm?.Positive(names) ?? r.Positive(names);
        bool? Bool(params string[] names) => ssm?.Bool(names) ?? r.Bool(names);
        var nGroups = Size(ModelLimits.Heads, "n_groups", "ngroups") ?? (mamba2 && !mambaSsm ? 8 : 1);
        var limit = TimeStepLimit(ssm is not null && ssm.Has("dt_limit") ? ssm : r);
        var c = new MambaConfig
        {
            Mixer = mamba2 ? MixerKind.Mamba2 : MixerKind.Mamba1,
            DModel = r.Size(ModelLimits.Width, "hidden_size", "d_model") ?? d.DModel,
            NLayer = r.Size(ModelLimits.Layers, "num_hidden_layers", "n_layer") ?? d.NLayer,
            DState = Size(ModelLimits.StateSize, "state_size", "d_state") ?? (mamba2 ? 128 : d.DState),
            DConv = Size(ModelLimits.ConvKernel, "conv_kernel", "d_conv") ?? d.DConv,
            Expand = Size(ModelLimits.Expand, "expand") ?? d.Expand,
            IntermediateSize = r.Size(ModelLimits.InnerWidth, "intermediate_size", "d_inner"),
            TimeStepRank = r.Holds("auto", "time_step_rank", "dt_rank") || ssm?.Holds("auto", "dt_rank") == true ? null
                : Size(ModelLimits.Width, "time_step_rank", "dt_rank"),
            DtMin = Positive("time_step_min", "dt_min") ?? d.DtMin,
            DtMax = Positive("time_step_max", "dt_max") ?? d.DtMax,
            DtInit = ssm?.Choice(["random", "constant"], "dt_init") ?? r.Choice(["random", "constant"], "time_step_init_scheme", "dt_init") ?? d.DtInit,
            DtScale = ssm?.Number("dt_scale") ?? r.Number("time_step_scale", "dt_scale") ?? d.DtScale,
            DtInitFloor = ssm?.NonNegative("dt_init_floor") ?? r.NonNegative("time_step_floor", "dt_init_floor") ?? d.DtInitFloor,
            ConvBias = Bool("use_conv_bias", "conv_bias") ?? d.ConvBias,
            Bias = Bool("use_bias", "bias") ?? d.Bias,
            VocabSize = r.Size(ModelLimits.Vocabulary, "vocab_size") ?? d.VocabSize,
            TieEmbeddings = r.Bool("tie_word_embeddings", "tie_embeddings") ?? !(mamba2 && !mambaSsm),
            NormEpsilon = (float)(r.Positive("layer_norm_epsilon", "norm_epsilon") ?? d.NormEpsilon),
            ResidualInFp32 = r.Bool("residual_in_fp32") ?? d.ResidualInFp32,
            Selective = r.Bool("selective") ?? d.Selective,
            MaxPositionEmbeddings = r.Count(ModelLimits.Positions, "max_position_embeddings") ?? 0,
            Dropout = r.Probability("dropout") ?? 0,
            InitializerRange = r.NonNegative("initializer_range") ?? (mamba2 ? 0.1 : d.InitializerRange),
            RescalePrenormResidual = r.Bool("rescale_prenorm_residual") ?? !mamba2,
            MixerRmsEps = (float?)rmsEps ?? (type == "falcon_mamba" ? 1e-6f : null),
            HeadDim = Size(ModelLimits.InnerWidth, "head_dim", "headdim") ?? d.HeadDim,
            NumHeads = r.Size(ModelLimits.Heads, "num_heads"),
            NGroups = nGroups,
            ChunkSize = Size(ModelLimits.Positions, "chunk_size") ?? d.ChunkSize,
            TimeStepLimitMin = limit.Min,
            TimeStepLimitMax = limit.Max,
            NormBeforeGate = ssm?.Bool("norm_before_gate") ?? false,
            NormGroups = r.Size(ModelLimits.Heads, "norm_groups") ?? (mambaSsm ? nGroups : 1),
        };
        if (c.IntermediateSize is int e && e != (long)c.Expand * c.DModel && mamba2)
            throw r.Error($"field 'intermediate_size': a Mamba-2 model's d_inner is expand · hidden_size = {(long)c.Expand * c.DModel}, got {e}");
        c.Validate(r.Source);
        return c;
    }

    /// <summary>Fields with values the reference has but this code does not implement: refused by name, never a silently different model.</summary>
    private static void Unsupported(ConfigReader r, ConfigReader? ssm, bool mamba2)
    {
        if (r.Bool("rms_norm") == false)
            throw r.Error("field 'rms_norm': false is not implemented (the blocks' and the gated norm are RMSNorm here)");
        if (r.Count(ModelLimits.InnerWidth, "d_intermediate") is > 0)
            throw r.Error("field 'd_intermediate': an MLP after each mixer is not implemented (expected 0)");
        if (r.Node("attn_layer_idx") is System.Text.Json.Nodes.JsonArray { Count: > 0 })
            throw r.Error("field 'attn_layer_idx': attention layers are not implemented (expected [])");
        if (r.String("hidden_act") is { } act && act is not ("silu" or "swish"))
            throw r.Error($"field 'hidden_act': expected \"silu\", got \"{act}\"");
        if (ssm is null) return;
        string[] known = ["layer", "d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor",
            "conv_bias", "bias", "use_fast_path", "headdim", "ngroups", "chunk_size", "dt_limit", "rmsnorm", "norm_before_gate",
            "A_init_range", "D_has_hdim", "d_ssm", "activation", "learnable_init_states",
            "conv_init", "use_mem_eff_path", "sequence_parallel"];   // an init and code paths: the same model
        ssm.RejectUnknown(known);
        if (ssm.Bool("rmsnorm") == false) throw ssm.Error("field 'ssm_cfg.rmsnorm': false is not implemented (Mamba-2 without the gated norm)");
        if (ssm.Bool("D_has_hdim") == true) throw ssm.Error("field 'ssm_cfg.D_has_hdim': true (D per channel) is not implemented");
        if (ssm.Bool("learnable_init_states") == true) throw ssm.Error("field 'ssm_cfg.learnable_init_states': true is not implemented");
        if (ssm.String("activation") is { } a && a is not ("silu" or "swish")) throw ssm.Error($"field 'ssm_cfg.activation': expected \"silu\", got \"{a}\"");
        if (ssm.Has("d_ssm")) throw ssm.Error("field 'ssm_cfg.d_ssm': an SSM narrower than d_inner (with a gated MLP beside it) is not implemented");
        if (!mamba2 && (ssm.Has("headdim") || ssm.Has("ngroups") || ssm.Has("chunk_size")))
            throw ssm.Error("field 'ssm_cfg.layer': Mamba-2 fields (headdim, ngroups, chunk_size) need layer \"Mamba2\"");
    }

    /// <summary>time_step_limit / dt_limit: [min, max], max possibly Infinity (as Python's json writes transformers' default).</summary>
    private static (double Min, double Max) TimeStepLimit(ConfigReader r)
    {
        string name = r.Has("time_step_limit") ? "time_step_limit" : "dt_limit";
        var node = r.Node(name);
        if (node is null) return (0, double.PositiveInfinity);
        if (node is System.Text.Json.Nodes.JsonArray { Count: 2 } a && ConfigReader.Real(a[0]) is double lo && ConfigReader.Real(a[1]) is double hi
            && lo >= 0 && hi >= lo && !double.IsPositiveInfinity(lo))
            return (lo, hi);
        throw r.Error(name, "[min, max] with 0 ≤ min ≤ max (max may be Infinity)", node);
    }

    /// <summary>Stands for the bare Infinity token in the JSON ToJson builds (no field's value can be this string).</summary>
    private const string InfinityMark = "(mamba4: bare Infinity)";

    /// <summary>HF-compatible config.json (model_type <see cref="ModelType"/>: "mamba", "falcon_mamba" or "mamba2"), plus Mamba4's own fields.</summary>
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
        if (Mixer == MixerKind.Mamba2)
        {
            o["architectures"] = new JsonArray("Mamba2ForCausalLM");
            o["num_heads"] = Heads;
            o["head_dim"] = HeadDim;
            o["n_groups"] = NGroups;
            o["chunk_size"] = ChunkSize;
            o["rms_norm"] = true;
            if (NormBeforeGate) o["ssm_cfg"] = new JsonObject { ["norm_before_gate"] = true };   // mamba_ssm's, the one read
            o["norm_groups"] = NormGroups;
            // transformers' default (0, ∞) is what an absent field means. An infinite max is written as Python's json
            // writes it, a bare Infinity (not JSON; transformers and ConfigReader read it; a quoted one is a string).
            if (TimeStepLimitMin != 0 || !double.IsPositiveInfinity(TimeStepLimitMax))
                o["time_step_limit"] = new JsonArray(TimeStepLimitMin, double.IsPositiveInfinity(TimeStepLimitMax) ? InfinityMark : TimeStepLimitMax);
            o.Remove("selective");
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }).Replace($"\"{InfinityMark}\"", "Infinity");
    }
}
