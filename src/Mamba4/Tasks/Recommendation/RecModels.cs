using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.Recommendation;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Nn;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// The sizes a user chooses for a recommender; null means the model's own default (Mamba4Rec: hidden 64, 1 layer,
/// d_state 32, dropout 0.2 — the Mamba4Rec paper; SASRec: RecBole's 64, 2 layers, 2 heads, dropout 0.5; BERT4Rec: RecBole's 64, 2 layers, 2 heads, dropout 0.2; GRU4Rec:
/// RecBole's embedding 64, hidden 128, dropout 0.3). <see cref="Hidden"/> is GRU4Rec's embedding_size.
/// </summary>
public sealed record RecModelOptions
{
    public string Kind { get; init; } = "mamba4rec";
    public int MaxLen { get; init; } = 50;
    public int? Hidden { get; init; }
    public int? Layers { get; init; }
    public int? DState { get; init; }
    public float? Dropout { get; init; }
    /// <summary>Mamba4Rec only: residual around the Mamba block (null: the reference's rule, only when stacked).</summary>
    public bool? Residual { get; init; }
    /// <summary>Mamba4Rec only: the layers' mixer, mamba1 or mamba2 (with <see cref="HeadDim"/>, null = the default).</summary>
    public string Mixer { get; init; } = "mamba1";
    public int? HeadDim { get; init; }
    /// <summary>SASRec and BERT4Rec: "fused" (F.Attention, no [L × L] tensor kept) or "naive" (RecBole's materialised
    /// scores and probabilities, F.AttentionMaterialized: same results, L² memory).</summary>
    public string Attention { get; init; } = "fused";
    /// <summary>Where Mamba4Rec's unset sizes come from: "default" (<see cref="Mamba4RecConfig"/>'s defaults) or "paper"
    /// (<see cref="Mamba4RecConfig.Paper"/>, pinned). They are the same today: on validation metrics the `--layers 2
    /// --dropout 0.5` candidate did not beat the paper's configuration on ML-100K or ML-1M (docs/recommendation.md,
    /// "Defaults"). The baselines keep RecBole's defaults under both.</summary>
    public string Preset { get; init; } = "default";

    public static readonly string[] AttentionKinds = ["fused", "naive"];
    public static readonly string[] Presets = ["default", "paper"];

    /// <summary>Checks every size (and the kind) before anything is read, created or written.</summary>
    public void Validate()
    {
        string kind = RecModels.ParseKind(Kind);
        ModelLimits.Check("--max-len", MaxLen, ModelLimits.Positions);
        if (Hidden is { } h) ModelLimits.Check("--hidden", h, ModelLimits.Width);
        if (Layers is { } l) ModelLimits.Check("--layers", l, ModelLimits.Layers);
        if (DState is { } n) ModelLimits.Check("--d-state", n, ModelLimits.StateSize);
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"--dropout must be in [0, 1), got {Dropout}");
        if (Residual is not null && kind != "mamba4rec") throw new ArgumentException($"--residual applies to mamba4rec only, not {kind}");
        MambaConfig.ParseMixer(Mixer);
        if ((Mixer != "mamba1" || HeadDim is not null) && kind != "mamba4rec") throw new ArgumentException($"--mixer and --head-dim apply to mamba4rec only, not {kind}");
        if (!Presets.Contains(Preset)) throw new ArgumentException($"--preset must be {string.Join(" or ", Presets)}, got '{Preset}'");
        if (!AttentionKinds.Contains(Attention)) throw new ArgumentException($"--attention must be {string.Join(" or ", AttentionKinds)}, got '{Attention}'");
        if (Attention != "fused" && kind is not ("sasrec" or "bert4rec")) throw new ArgumentException($"--attention applies to sasrec and bert4rec only, not {kind}");
        var sasrec = new SASRecConfig();
        if (kind is "sasrec" or "bert4rec" && (Hidden ?? sasrec.HiddenSize) % sasrec.NHeads != 0)
            throw new ArgumentException($"--hidden must be a multiple of {(kind == "sasrec" ? "SASRec" : "BERT4Rec")}'s {sasrec.NHeads} heads, got {Hidden ?? sasrec.HiddenSize}");
    }
}

/// <summary>A loaded or created recommender and what it needs beside its weights.</summary>
public sealed class RecModel(ISequentialRecommender model, string kind, int maxLen, IReadOnlyList<string>? itemTokens) : IDisposable
{
    public ISequentialRecommender Model { get; } = model;
    public Module Module => (Module)Model;
    /// <summary>mamba4rec, sasrec, bert4rec or gru4rec.</summary>
    public string Kind { get; } = kind;
    /// <summary>The most recent items a prediction looks at (MAX_ITEM_LIST_LENGTH).</summary>
    public int MaxLen { get; } = maxLen;
    /// <summary>Original item token of each item id ([0] = padding), or null (the fixtures: ids are the items).</summary>
    public IReadOnlyList<string>? ItemTokens { get; } = itemTokens;
    public int NItems => Model.NItems;

    /// <summary>The original token of an item id, or the id itself when the model has no token map.</summary>
    public string ItemToken(int id) => ItemTokens?[id] ?? id.ToString(CultureInfo.InvariantCulture);

    private Dictionary<string, int>? _itemIds;

    /// <summary>The model's id of an original item token, or null when the model does not know it (or has no token map).</summary>
    public int? ItemId(string token)
    {
        if (ItemTokens is null) return null;
        _itemIds ??= SequenceDataset.Index(ItemTokens, 1);
        return _itemIds.TryGetValue(token, out var id) ? id : null;
    }

    public void Dispose() => Module.Dispose();
}

/// <summary>
/// Creating, saving and loading recommenders. A saved model is a directory: <c>config.json</c> (RecBole's field names,
/// plus <c>"model"</c> and <c>"max_seq_length"</c>), <c>model.safetensors</c> (RecBole's parameter names) and
/// <c>item_tokens.json</c> (the original item token of every item id, id 0 = padding). The fixture directories
/// (no <c>"model"</c>, no token map) load too: the kind is <c>--model</c>, or guessed from the config's fields.
/// </summary>
public static class RecModels
{
    public static readonly string[] Kinds = ["mamba4rec", "sasrec", "bert4rec", "gru4rec"];
    public const string TokensFile = "item_tokens.json";

    public static string ParseKind(string kind)
    {
        var k = kind.Trim().ToLowerInvariant();
        return Kinds.Contains(k) ? k : throw new ArgumentException($"unknown model '{kind}'; expected one of {string.Join(", ", Kinds)}");
    }

    public static ISequentialRecommender Create(RecModelOptions o, int nItems, int seed)
    {
        o.Validate();
        string kind = ParseKind(o.Kind);
        switch (kind)
        {
            case "mamba4rec":
            {
                var d = o.Preset == "paper" ? Mamba4RecConfig.Paper : new Mamba4RecConfig();
                int hidden = o.Hidden ?? d.HiddenSize;
                return new Mamba4Rec(new Mamba4RecConfig
                {
                    NItems = nItems, HiddenSize = hidden, NumLayers = o.Layers ?? d.NumLayers, DState = o.DState ?? d.DState,
                    DConv = d.DConv, Expand = d.Expand, InnerSize = 4 * hidden, Dropout = o.Dropout ?? d.Dropout, Residual = o.Residual,
                    MixerKind = MambaConfig.ParseMixer(o.Mixer), HeadDim = o.HeadDim,
                }, seed);
            }
            case "sasrec":
            {
                var d = new SASRecConfig();
                int hidden = o.Hidden ?? d.HiddenSize;
                float p = o.Dropout ?? d.HiddenDropout;
                return new SASRec(new SASRecConfig
                {
                    NItems = nItems, MaxSeqLength = o.MaxLen, HiddenSize = hidden, NLayers = o.Layers ?? d.NLayers, InnerSize = 4 * hidden,
                    HiddenDropout = p, AttnDropout = p, NaiveAttention = o.Attention == "naive",
                }, seed);
            }
            case "bert4rec":
            {
                var d = new BERT4RecConfig();
                int hidden = o.Hidden ?? d.HiddenSize;
                float p = o.Dropout ?? d.HiddenDropout;
                return new BERT4Rec(new BERT4RecConfig
                {
                    NItems = nItems, MaxSeqLength = o.MaxLen, HiddenSize = hidden, NLayers = o.Layers ?? d.NLayers, InnerSize = 4 * hidden,
                    HiddenDropout = p, AttnDropout = p, NaiveAttention = o.Attention == "naive",
                }, seed);
            }
            default:
            {
                var d = new GRU4RecConfig();
                return new GRU4Rec(new GRU4RecConfig
                {
                    NItems = nItems, EmbeddingSize = o.Hidden ?? d.EmbeddingSize, NumLayers = o.Layers ?? d.NumLayers, Dropout = o.Dropout ?? d.Dropout,
                }, seed);
            }
        }
    }

    /// <summary>The kind name of a model (mamba4rec, sasrec, bert4rec, gru4rec).</summary>
    public static string KindOf(ISequentialRecommender model) => model switch
    {
        Mamba4Rec => "mamba4rec", SASRec => "sasrec", BERT4Rec => "bert4rec", GRU4Rec => "gru4rec",
        _ => throw new NotSupportedException(model.GetType().Name),
    };

    public static string ConfigJson(ISequentialRecommender model, int maxLen)
    {
        var json = model switch
        {
            Mamba4Rec m => WriteMamba4Rec(m.Config),
            SASRec s => RecConfigJson.Write(s.Config),
            BERT4Rec b => RecConfigJson.Write(b.Config),
            GRU4Rec g => RecConfigJson.Write(g.Config),
            _ => throw new NotSupportedException(model.GetType().Name),
        };
        var o = JsonNode.Parse(json)!.AsObject();
        o["max_seq_length"] = maxLen;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes the model directory (a sibling temporary directory named as <see cref="AtomicFile.TempPath"/> names them, then renamed over the old one).</summary>
    public static void Save(ISequentialRecommender model, int maxLen, IReadOnlyList<string>? itemTokens, string dir)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        var tmp = AtomicFile.TempPath(full);
        Directory.CreateDirectory(tmp);
        ((Module)model).SaveSafetensors(Path.Combine(tmp, "model.safetensors"));
        File.WriteAllText(Path.Combine(tmp, "config.json"), ConfigJson(model, maxLen));
        if (itemTokens is not null) File.WriteAllText(Path.Combine(tmp, TokensFile), JsonSerializer.Serialize(itemTokens));
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.Move(tmp, full);
    }

    /// <summary>Loads a model directory; <paramref name="kind"/> overrides (or supplies) its <c>"model"</c>; <paramref name="option"/> names the
    /// command-line option in errors (the CLI's --checkpoint, the server's --rec); <paramref name="defaultKind"/>, when given,
    /// is the kind of a config without <c>"model"</c> (instead of guessing it from the fields). The configuration is checked
    /// against the weights and the memory it needs before the model is built (<see cref="ModelFiles.Load{T}"/>).</summary>
    public static RecModel Load(string dir, string? kind = null, string option = "--checkpoint", string? defaultKind = null, ModelLoadOptions? options = null)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{option}: model directory not found: {dir}");
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath} not found: {option} must name a model directory (config.json + model.safetensors)", configPath);
        var r = ConfigReader.Load(configPath);
        var k = kind is not null ? ParseKind(kind) : r.Choice(Kinds, "model") ?? (defaultKind is not null ? ParseKind(defaultKind) : Guess(r));
        int? maxLen = r.Size(ModelLimits.Positions, "max_seq_length");
        T Build<T>(ParameterShapes shapes, Func<T> create) where T : Module =>
            ModelFiles.Load(ModelFiles.WeightFiles(dir), shapes, create, (options ?? ModelLoadOptions.Default) with { WeightDType = Tensors.DType.F32 }, (options ?? ModelLoadOptions.Default).Device);   // F32: recommenders train and score with F.MatMul
        ISequentialRecommender model;
        switch (k)
        {
            case "mamba4rec": { var c = ReadMamba4Rec(r); model = Build(Mamba4Rec.Shapes(c), () => new Mamba4Rec(c)); break; }
            case "sasrec": { var c = RecConfigJson.ReadSASRec(r); model = Build(SASRec.Shapes(c), () => new SASRec(c)); break; }
            case "bert4rec": { var c = RecConfigJson.ReadBERT4Rec(r); model = Build(BERT4Rec.Shapes(c), () => new BERT4Rec(c)); break; }
            default: { var c = RecConfigJson.ReadGRU4Rec(r); model = Build(GRU4Rec.Shapes(c), () => new GRU4Rec(c)); break; }
        }
        try
        {
            IReadOnlyList<string>? tokens = null;
            var tokensPath = Path.Combine(dir, TokensFile);
            if (File.Exists(tokensPath))
            {
                tokens = JsonSerializer.Deserialize<string[]>(File.ReadAllText(tokensPath))
                         ?? throw new InvalidDataException($"{tokensPath}: expected a JSON array of item tokens");
                if (tokens.Count != model.NItems)
                    throw new InvalidDataException($"{tokensPath}: {tokens.Count} item tokens for a model of {model.NItems} items");
            }
            ((Module)model).Eval();
            return new RecModel(model, k, maxLen ?? model switch { SASRec s => s.Config.MaxSeqLength, BERT4Rec b => b.Config.MaxSeqLength, _ => 50 }, tokens);
        }
        catch
        {
            ((Module)model).Dispose();
            throw;
        }
    }

    private static string Guess(ConfigReader r)
    {
        if (r.Has("d_state")) return "mamba4rec";
        if (r.Has("mask_ratio")) return "bert4rec";
        if (r.Has("n_heads")) return "sasrec";
        if (r.Has("embedding_size")) return "gru4rec";
        throw r.Error($"no \"model\" field and the kind cannot be told from the fields; pass --model {string.Join("|", Kinds)}");
    }

    public static string WriteMamba4Rec(Mamba4RecConfig c) => new JsonObject
    {
        ["model"] = "mamba4rec",
        ["n_items"] = c.NItems,
        ["hidden_size"] = c.HiddenSize,
        ["num_layers"] = c.NumLayers,
        ["d_state"] = c.DState,
        ["d_conv"] = c.DConv,
        ["expand"] = c.Expand,
        ["inner_size"] = c.InnerSize,
        ["dropout_prob"] = c.Dropout,
        ["layer_norm_eps"] = c.LayerNormEps,
        ["selective"] = c.Selective,
        ["residual"] = c.Residual,
        ["mixer"] = MambaConfig.MixerName(c.MixerKind),
        ["head_dim"] = c.MixerKind == MixerKind.Mamba2 ? c.Mixer.HeadDim : null,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Mamba4Rec's config.json (the fixture's fields; "dropout" or RecBole's "dropout_prob").</summary>
    public static Mamba4RecConfig ReadMamba4Rec(ConfigReader r)
    {
        var d = new Mamba4RecConfig();
        int hidden = r.Size(ModelLimits.Width, "hidden_size") ?? d.HiddenSize;
        var c = new Mamba4RecConfig
        {
            NItems = RecConfigJson.Items(r),
            HiddenSize = hidden,
            NumLayers = r.Size(ModelLimits.Layers, "num_layers") ?? d.NumLayers,
            DState = r.Size(ModelLimits.StateSize, "d_state") ?? d.DState,
            DConv = r.Size(ModelLimits.ConvKernel, "d_conv") ?? d.DConv,
            Expand = r.Size(ModelLimits.Expand, "expand") ?? d.Expand,
            InnerSize = r.Size(ModelLimits.InnerWidth, "inner_size") ?? 4 * hidden,
            Dropout = r.Probability("dropout_prob", "dropout") ?? d.Dropout,
            LayerNormEps = (float)(r.Positive("layer_norm_eps") ?? d.LayerNormEps),
            Selective = r.Bool("selective") ?? true,
            Residual = r.Bool("residual"),
            MixerKind = MambaConfig.ParseMixer(r.Choice(MambaConfig.MixerNames, "mixer") ?? "mamba1"),
            HeadDim = r.Size(ModelLimits.InnerWidth, "head_dim"),
        };
        if ((long)c.Expand * c.HiddenSize > ModelLimits.InnerWidth)
            throw r.Error($"field 'expand' × field 'hidden_size' = {(long)c.Expand * c.HiddenSize} exceeds {ModelLimits.InnerWidth}, the largest inner width");
        if (c.HeadDim is int h && (c.MixerKind != MixerKind.Mamba2 || c.Expand * c.HiddenSize % h != 0 || c.Expand * c.HiddenSize / h > ModelLimits.Heads))
            throw r.Error($"field 'head_dim': expected a divisor of expand · hidden_size = {c.Expand * c.HiddenSize} giving at most {ModelLimits.Heads} heads, with \"mixer\": \"mamba2\", got {h}");
        // dt_rank is ⌈hidden_size/16⌉ in Mamba4Rec (the fixture writes its value); another value cannot load.
        if (r.Size(ModelLimits.Width, "dt_rank") is int rank && rank != c.Mixer.DtRank)
            throw r.Error($"field 'dt_rank': {rank} is not supported (Mamba4Rec uses ⌈hidden_size/16⌉ = {c.Mixer.DtRank})");
        return c;
    }
}
