using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;

namespace Mamba4.Models;

/// <summary>
/// config.json for the baselines, in RecBole's field names (the fixtures' config.json reads as is; other keys are
/// ignored). Written with <c>"model"</c> naming the kind, so a saved directory says what it holds. Read through
/// <see cref="ConfigReader"/>: every size bounded by <see cref="ModelLimits"/>, errors naming the file and field.
/// </summary>
public static class RecConfigJson
{
    public static SASRecConfig ReadSASRec(string json, string source = "config.json") => ReadSASRec(ConfigReader.Parse(json, source));

    public static SASRecConfig ReadSASRec(ConfigReader r)
    {
        var d = new SASRecConfig();
        var c = new SASRecConfig
        {
            NItems = Items(r),
            MaxSeqLength = r.Size(ModelLimits.Positions, "max_seq_length", "MAX_ITEM_LIST_LENGTH") ?? d.MaxSeqLength,
            HiddenSize = r.Size(ModelLimits.Width, "hidden_size") ?? d.HiddenSize,
            NLayers = r.Size(ModelLimits.Layers, "n_layers") ?? d.NLayers,
            NHeads = r.Size(ModelLimits.Heads, "n_heads") ?? d.NHeads,
            InnerSize = r.Size(ModelLimits.InnerWidth, "inner_size") ?? d.InnerSize,
            HiddenDropout = r.Probability("hidden_dropout_prob") ?? d.HiddenDropout,
            AttnDropout = r.Probability("attn_dropout_prob") ?? d.AttnDropout,
            LayerNormEps = (float)(r.Positive("layer_norm_eps") ?? d.LayerNormEps),
            InitializerRange = r.NonNegative("initializer_range") ?? d.InitializerRange,
        };
        if (c.HiddenSize % c.NHeads != 0) throw r.Error($"field 'hidden_size' ({c.HiddenSize}) must be a multiple of field 'n_heads' ({c.NHeads})");
        return c;
    }

    public static BERT4RecConfig ReadBERT4Rec(string json, string source = "config.json") => ReadBERT4Rec(ConfigReader.Parse(json, source));

    /// <summary>BERT4Rec: SASRec's encoder fields (its defaults for dropout are RecBole's BERT4Rec ones) and mask_ratio.</summary>
    public static BERT4RecConfig ReadBERT4Rec(ConfigReader r)
    {
        var d = new BERT4RecConfig();
        var e = ReadSASRec(r);
        var c = new BERT4RecConfig
        {
            NItems = e.NItems, MaxSeqLength = e.MaxSeqLength, HiddenSize = e.HiddenSize, NLayers = e.NLayers, NHeads = e.NHeads, InnerSize = e.InnerSize,
            HiddenDropout = r.Probability("hidden_dropout_prob") ?? d.HiddenDropout,
            AttnDropout = r.Probability("attn_dropout_prob") ?? d.AttnDropout,
            LayerNormEps = e.LayerNormEps, InitializerRange = e.InitializerRange,
            MaskRatio = r.Probability("mask_ratio") ?? d.MaskRatio,
        };
        if (c.MaskRatio <= 0) throw r.Error($"field 'mask_ratio': expected a probability above 0 (some items must be masked), got {c.MaskRatio}");
        return c;
    }

    public static GRU4RecConfig ReadGRU4Rec(string json, string source = "config.json") => ReadGRU4Rec(ConfigReader.Parse(json, source));

    public static GRU4RecConfig ReadGRU4Rec(ConfigReader r)
    {
        var d = new GRU4RecConfig();
        return new GRU4RecConfig
        {
            NItems = Items(r),
            EmbeddingSize = r.Size(ModelLimits.Width, "embedding_size") ?? d.EmbeddingSize,
            HiddenSize = r.Size(ModelLimits.Width, "hidden_size") ?? d.HiddenSize,
            NumLayers = r.Size(ModelLimits.Layers, "num_layers") ?? d.NumLayers,
            Dropout = r.Probability("dropout_prob") ?? d.Dropout,
        };
    }

    /// <summary>n_items (required): the items and the padding item 0, so at least 2.</summary>
    public static int Items(ConfigReader r)
    {
        int n = r.Size(ModelLimits.Vocabulary, "n_items") ?? throw r.Error("field 'n_items' is missing (the number of items, padding item 0 included)");
        return n >= 2 ? n : throw r.Error("n_items", "at least 2 (the padding item 0 and one item)", n);
    }

    public static string Write(SASRecConfig c) => Serialize(TransformerFields("sasrec", c));

    /// <summary>BERT4Rec: its encoder's fields under SASRec's names, then mask_ratio and loss_type.</summary>
    public static string Write(BERT4RecConfig c)
    {
        var o = TransformerFields("bert4rec", c.Encoder);
        o["mask_ratio"] = c.MaskRatio;
        o["loss_type"] = "CE";
        return Serialize(o);
    }

    private static JsonObject TransformerFields(string model, SASRecConfig c) => new()
    {
        ["model"] = model,
        ["n_items"] = c.NItems,
        ["max_seq_length"] = c.MaxSeqLength,
        ["hidden_size"] = c.HiddenSize,
        ["n_layers"] = c.NLayers,
        ["n_heads"] = c.NHeads,
        ["inner_size"] = c.InnerSize,
        ["hidden_dropout_prob"] = c.HiddenDropout,
        ["attn_dropout_prob"] = c.AttnDropout,
        ["layer_norm_eps"] = c.LayerNormEps,
        ["initializer_range"] = c.InitializerRange,
        ["hidden_act"] = "gelu",
    };

    public static string Write(GRU4RecConfig c) => Serialize(new JsonObject
    {
        ["model"] = "gru4rec",
        ["n_items"] = c.NItems,
        ["embedding_size"] = c.EmbeddingSize,
        ["hidden_size"] = c.HiddenSize,
        ["num_layers"] = c.NumLayers,
        ["dropout_prob"] = c.Dropout,
    });

    /// <summary>The <c>"model"</c> field of a config.json, or null when absent.</summary>
    public static string? ModelKind(string json, string source = "config.json") => ConfigReader.Parse(json, source).String("model");

    private static string Serialize(JsonObject o) => o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
