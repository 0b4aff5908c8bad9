using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mamba4.Models;

/// <summary>
/// config.json for the baselines, in RecBole's field names (the fixtures' config.json reads as is; other keys are
/// ignored). Written with <c>"model"</c> naming the kind, so a saved directory says what it holds.
/// </summary>
public static class RecConfigJson
{
    public static SASRecConfig ReadSASRec(string json, string source = "config.json")
    {
        var r = new Reader(json, source);
        var d = new SASRecConfig();
        return new SASRecConfig
        {
            NItems = r.Int("n_items") ?? throw new FormatException($"{source}: 'n_items' is required"),
            MaxSeqLength = r.Int("max_seq_length", "MAX_ITEM_LIST_LENGTH") ?? d.MaxSeqLength,
            HiddenSize = r.Int("hidden_size") ?? d.HiddenSize,
            NLayers = r.Int("n_layers") ?? d.NLayers,
            NHeads = r.Int("n_heads") ?? d.NHeads,
            InnerSize = r.Int("inner_size") ?? d.InnerSize,
            HiddenDropout = (float)(r.Num("hidden_dropout_prob") ?? d.HiddenDropout),
            AttnDropout = (float)(r.Num("attn_dropout_prob") ?? d.AttnDropout),
            LayerNormEps = (float)(r.Num("layer_norm_eps") ?? d.LayerNormEps),
            InitializerRange = r.Num("initializer_range") ?? d.InitializerRange,
        };
    }

    public static GRU4RecConfig ReadGRU4Rec(string json, string source = "config.json")
    {
        var r = new Reader(json, source);
        var d = new GRU4RecConfig();
        return new GRU4RecConfig
        {
            NItems = r.Int("n_items") ?? throw new FormatException($"{source}: 'n_items' is required"),
            EmbeddingSize = r.Int("embedding_size") ?? d.EmbeddingSize,
            HiddenSize = r.Int("hidden_size") ?? d.HiddenSize,
            NumLayers = r.Int("num_layers") ?? d.NumLayers,
            Dropout = (float)(r.Num("dropout_prob") ?? d.Dropout),
        };
    }

    public static string Write(SASRecConfig c) => Serialize(new JsonObject
    {
        ["model"] = "sasrec",
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
    });

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
    public static string? ModelKind(string json, string source = "config.json") => new Reader(json, source).Str("model");

    private static string Serialize(JsonObject o) => o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private sealed class Reader
    {
        private readonly JsonObject _obj;
        private readonly string _source;

        public Reader(string json, string source)
        {
            _source = source;
            try { _obj = JsonNode.Parse(json) as JsonObject ?? throw new FormatException($"{source}: expected a JSON object"); }
            catch (JsonException e) { throw new FormatException($"{source}: not valid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine}: {e.Message}", e); }
        }

        public int? Int(params string[] names)
        {
            foreach (var n in names)
                if (_obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<int>(out var i)) return i;
                    if (v is JsonValue dv && dv.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
                    throw new FormatException($"{_source}: '{n}' must be an integer, got {v.ToJsonString()}");
                }
            return null;
        }

        public double? Num(params string[] names)
        {
            foreach (var n in names)
                if (_obj.TryGetPropertyValue(n, out var v) && v is not null)
                {
                    if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) return d;
                    if (v is JsonValue sv && sv.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
                    throw new FormatException($"{_source}: '{n}' must be a number, got {v.ToJsonString()}");
                }
            return null;
        }

        public string? Str(string name)
        {
            if (_obj.TryGetPropertyValue(name, out var v) && v is not null)
            {
                if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return s;
                throw new FormatException($"{_source}: '{name}' must be a string, got {v.ToJsonString()}");
            }
            return null;
        }
    }
}
