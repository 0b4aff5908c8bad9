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
/// d_state 32, dropout 0.2 — the Mamba4Rec paper; SASRec: RecBole's 64, 2 layers, 2 heads, dropout 0.5; GRU4Rec:
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

    /// <summary>Checks every size (and the kind) before anything is read, created or written.</summary>
    public void Validate()
    {
        string kind = RecModels.ParseKind(Kind);
        if (MaxLen < 1) throw new ArgumentException($"--max-len must be positive, got {MaxLen}");
        if (Hidden is < 1) throw new ArgumentException($"--hidden must be positive, got {Hidden}");
        if (Layers is < 1) throw new ArgumentException($"--layers must be positive, got {Layers}");
        if (DState is < 1) throw new ArgumentException($"--d-state must be positive, got {DState}");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"--dropout must be in [0, 1), got {Dropout}");
        if (Residual is not null && kind != "mamba4rec") throw new ArgumentException($"--residual applies to mamba4rec only, not {kind}");
        var sasrec = new SASRecConfig();
        if (kind == "sasrec" && (Hidden ?? sasrec.HiddenSize) % sasrec.NHeads != 0)
            throw new ArgumentException($"--hidden must be a multiple of SASRec's {sasrec.NHeads} heads, got {Hidden ?? sasrec.HiddenSize}");
    }
}

/// <summary>A loaded or created recommender and what it needs beside its weights.</summary>
public sealed class RecModel(ISequentialRecommender model, string kind, int maxLen, IReadOnlyList<string>? itemTokens) : IDisposable
{
    public ISequentialRecommender Model { get; } = model;
    public Module Module => (Module)Model;
    /// <summary>mamba4rec, sasrec or gru4rec.</summary>
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
    public static readonly string[] Kinds = ["mamba4rec", "sasrec", "gru4rec"];
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
                var d = new Mamba4RecConfig();
                int hidden = o.Hidden ?? d.HiddenSize;
                return new Mamba4Rec(new Mamba4RecConfig
                {
                    NItems = nItems, HiddenSize = hidden, NumLayers = o.Layers ?? d.NumLayers, DState = o.DState ?? d.DState,
                    InnerSize = 4 * hidden, Dropout = o.Dropout ?? d.Dropout, Residual = o.Residual,
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
                    HiddenDropout = p, AttnDropout = p,
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

    public static string ConfigJson(ISequentialRecommender model, int maxLen)
    {
        var json = model switch
        {
            Mamba4Rec m => WriteMamba4Rec(m.Config),
            SASRec s => RecConfigJson.Write(s.Config),
            GRU4Rec g => RecConfigJson.Write(g.Config),
            _ => throw new NotSupportedException(model.GetType().Name),
        };
        var o = JsonNode.Parse(json)!.AsObject();
        o["max_seq_length"] = maxLen;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes the model directory (atomically: a sibling temp directory, then renamed over the old one).</summary>
    public static void Save(ISequentialRecommender model, int maxLen, IReadOnlyList<string>? itemTokens, string dir)
    {
        var full = Path.GetFullPath(dir);
        var tmp = full.TrimEnd(Path.DirectorySeparatorChar) + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        ((Module)model).SaveSafetensors(Path.Combine(tmp, "model.safetensors"));
        File.WriteAllText(Path.Combine(tmp, "config.json"), ConfigJson(model, maxLen));
        if (itemTokens is not null) File.WriteAllText(Path.Combine(tmp, TokensFile), JsonSerializer.Serialize(itemTokens));
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.Move(tmp, full);
    }

    /// <summary>Loads a model directory; <paramref name="kind"/> overrides (or supplies) its <c>"model"</c>; <paramref name="option"/> names the
    /// command-line option in errors (the CLI's --checkpoint, the server's --rec); <paramref name="defaultKind"/>, when given,
    /// is the kind of a config without <c>"model"</c> (instead of guessing it from the fields).</summary>
    public static RecModel Load(string dir, string? kind = null, string option = "--checkpoint", string? defaultKind = null)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{option}: model directory not found: {dir}");
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath} not found: {option} must name a model directory (config.json + model.safetensors)", configPath);
        var json = File.ReadAllText(configPath);
        JsonObject obj;
        try { obj = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{configPath}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{configPath}: not valid JSON: {e.Message}", e); }
        var k = kind is not null ? ParseKind(kind) : RecConfigJson.ModelKind(json, configPath) is { } named ? ParseKind(named)
            : defaultKind is not null ? ParseKind(defaultKind) : Guess(obj, configPath);
        int? maxLen = obj["max_seq_length"] is JsonValue v && v.TryGetValue<int>(out var ml) ? ml : null;
        ISequentialRecommender model = k switch
        {
            "mamba4rec" => new Mamba4Rec(ReadMamba4Rec(obj, configPath)),
            "sasrec" => new SASRec(RecConfigJson.ReadSASRec(json, configPath)),
            _ => new GRU4Rec(RecConfigJson.ReadGRU4Rec(json, configPath)),
        };
        try
        {
            ((Module)model).LoadSafetensors(ModelFiles.WeightFiles(dir));
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
            ((Module)model).To(Backends.Backend.DefaultDevice);
            return new RecModel(model, k, maxLen ?? (model is SASRec s ? s.Config.MaxSeqLength : 50), tokens);
        }
        catch
        {
            ((Module)model).Dispose();
            throw;
        }
    }

    private static string Guess(JsonObject o, string source)
    {
        if (o.ContainsKey("d_state")) return "mamba4rec";
        if (o.ContainsKey("n_heads")) return "sasrec";
        if (o.ContainsKey("embedding_size")) return "gru4rec";
        throw new InvalidDataException($"{source}: no \"model\" field and the kind cannot be told from the fields; pass --model {string.Join("|", Kinds)}");
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
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Mamba4Rec's config.json (the fixture's fields; "dropout" or RecBole's "dropout_prob").</summary>
    public static Mamba4RecConfig ReadMamba4Rec(JsonObject o, string source)
    {
        var d = new Mamba4RecConfig();
        int? Int(string name)
        {
            if (o[name] is not JsonValue v) return null;
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var x) && x == Math.Floor(x)) return (int)x;
            throw new InvalidDataException($"{source}: '{name}' must be an integer, got {v.ToJsonString()}");
        }
        double? Num(string name)
        {
            if (o[name] is not JsonValue v) return null;
            if (v.TryGetValue<double>(out var x)) return x;
            if (v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out x)) return x;
            throw new InvalidDataException($"{source}: '{name}' must be a number, got {v.ToJsonString()}");
        }
        int hidden = Int("hidden_size") ?? d.HiddenSize;
        var c = new Mamba4RecConfig
        {
            NItems = Int("n_items") ?? throw new InvalidDataException($"{source}: 'n_items' is required"),
            HiddenSize = hidden,
            NumLayers = Int("num_layers") ?? d.NumLayers,
            DState = Int("d_state") ?? d.DState,
            DConv = Int("d_conv") ?? d.DConv,
            Expand = Int("expand") ?? d.Expand,
            InnerSize = Int("inner_size") ?? 4 * hidden,
            Dropout = (float)(Num("dropout_prob") ?? Num("dropout") ?? d.Dropout),
            LayerNormEps = (float)(Num("layer_norm_eps") ?? d.LayerNormEps),
            Selective = o["selective"] is JsonValue sel ? (sel.TryGetValue<bool>(out var b) ? b : throw new InvalidDataException($"{source}: 'selective' must be true or false, got {sel.ToJsonString()}")) : true,
            Residual = o["residual"] is JsonValue res ? (res.TryGetValue<bool>(out var rb) ? rb : throw new InvalidDataException($"{source}: 'residual' must be true, false or null, got {res.ToJsonString()}")) : null,
        };
        foreach (var (name, value) in new[] { ("n_items", c.NItems), ("hidden_size", c.HiddenSize), ("num_layers", c.NumLayers),
                     ("d_state", c.DState), ("d_conv", c.DConv), ("expand", c.Expand), ("inner_size", c.InnerSize) })
            if (value < 1) throw new InvalidDataException($"{source}: '{name}' must be positive, got {value}");
        if (c.NItems < 2) throw new InvalidDataException($"{source}: 'n_items' counts the padding item 0 and must be at least 2, got {c.NItems}");
        // dt_rank is ⌈hidden_size/16⌉ in Mamba4Rec (the fixture writes its value); another value cannot load.
        if (Int("dt_rank") is int rank && rank != c.Mixer.DtRank)
            throw new InvalidDataException($"{source}: dt_rank {rank} is not supported (Mamba4Rec uses ⌈hidden_size/16⌉ = {c.Mixer.DtRank})");
        return c;
    }
}
