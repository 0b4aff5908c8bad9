using System.Text.Json;
using System.Text.Json.Nodes;

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

    public int DInner => IntermediateSize ?? Expand * DModel;
    public int DtRank => TimeStepRank ?? (DModel + 15) / 16;

    public void Validate(string source = "config")
    {
        void Positive(string field, int v) { if (v <= 0) throw new FormatException($"{source}: '{field}' must be a positive integer, got {v}"); }
        Positive("hidden_size", DModel);
        Positive("num_hidden_layers", NLayer);
        Positive("state_size", DState);
        Positive("conv_kernel", DConv);
        Positive("intermediate_size", DInner);
        Positive("time_step_rank", DtRank);
        Positive("vocab_size", VocabSize);
        if (DtInit is not ("random" or "constant")) throw new FormatException($"{source}: 'time_step_init_scheme' must be \"random\" or \"constant\", got \"{DtInit}\"");
        if (!(DtMin > 0 && DtMax >= DtMin)) throw new FormatException($"{source}: need 0 < time_step_min ≤ time_step_max, got {DtMin}, {DtMax}");
        if (Dropout is < 0 or >= 1) throw new FormatException($"{source}: 'dropout' must be in [0, 1), got {Dropout}");
    }

    public static MambaConfig FromJsonFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file not found: {path}", path);
        return FromJson(File.ReadAllText(path), path);
    }

    public static MambaConfig FromJson(string json, string source = "config")
    {
        JsonObject obj;
        try { obj = JsonNode.Parse(json) as JsonObject ?? throw new FormatException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new FormatException($"{source}: not valid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine}: {e.Message}", e); }

        int? Int(params string[] names)
        {
            foreach (var n in names)
                if (obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<int>(out var i)) return i;
                    if (v is JsonValue sv && sv.TryGetValue<string>(out var s) && s == "auto") return null;
                    throw new FormatException($"{source}: '{n}' must be an integer, got {v.ToJsonString()}");
                }
            return null;
        }
        double? Num(params string[] names)
        {
            foreach (var n in names)
                if (obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) return d;
                    throw new FormatException($"{source}: '{n}' must be a number, got {v.ToJsonString()}");
                }
            return null;
        }
        bool? Bool(params string[] names)
        {
            foreach (var n in names)
                if (obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<bool>(out var b)) return b;
                    throw new FormatException($"{source}: '{n}' must be true or false, got {v.ToJsonString()}");
                }
            return null;
        }
        string? Str(params string[] names)
        {
            foreach (var n in names)
                if (obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return s;
                    throw new FormatException($"{source}: '{n}' must be a string, got {v.ToJsonString()}");
                }
            return null;
        }

        var d = new MambaConfig();
        var c = new MambaConfig
        {
            DModel = Int("hidden_size", "d_model") ?? d.DModel,
            NLayer = Int("num_hidden_layers", "n_layer") ?? d.NLayer,
            DState = Int("state_size", "d_state") ?? d.DState,
            DConv = Int("conv_kernel", "d_conv") ?? d.DConv,
            Expand = Int("expand") ?? d.Expand,
            IntermediateSize = Int("intermediate_size", "d_inner"),
            TimeStepRank = Int("time_step_rank", "dt_rank"),
            DtMin = Num("time_step_min", "dt_min") ?? d.DtMin,
            DtMax = Num("time_step_max", "dt_max") ?? d.DtMax,
            DtInit = Str("time_step_init_scheme", "dt_init") ?? d.DtInit,
            DtScale = Num("time_step_scale", "dt_scale") ?? d.DtScale,
            DtInitFloor = Num("time_step_floor", "dt_init_floor") ?? d.DtInitFloor,
            ConvBias = Bool("use_conv_bias", "conv_bias") ?? d.ConvBias,
            Bias = Bool("use_bias", "bias") ?? d.Bias,
            VocabSize = Int("vocab_size") ?? d.VocabSize,
            TieEmbeddings = Bool("tie_word_embeddings", "tie_embeddings") ?? d.TieEmbeddings,
            NormEpsilon = (float)(Num("layer_norm_epsilon", "norm_epsilon") ?? d.NormEpsilon),
            ResidualInFp32 = Bool("residual_in_fp32") ?? d.ResidualInFp32,
            Selective = Bool("selective") ?? d.Selective,
            MaxPositionEmbeddings = Int("max_position_embeddings") ?? 0,
            Dropout = (float)(Num("dropout") ?? 0),
            InitializerRange = Num("initializer_range") ?? d.InitializerRange,
            RescalePrenormResidual = Bool("rescale_prenorm_residual") ?? d.RescalePrenormResidual,
        };
        c.Validate(source);
        return c;
    }

    /// <summary>HF-compatible config.json (model_type "mamba"), plus Mamba4's own fields.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("MambaForCausalLM"),
            ["model_type"] = "mamba",
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
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
