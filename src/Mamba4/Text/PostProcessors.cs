using System.Text.Json;

namespace Mamba4.Text;

/// <summary>A tokenizer.json "post_processor" for one sequence: the special tokens Encode adds around the ids when asked to.</summary>
internal abstract class PostProcessor
{
    public abstract int[] Process(int[] ids);

    public static PostProcessor Parse(JsonElement e, JsonReader r, string path)
    {
        var type = r.Type(e, path);
        switch (type)
        {
            case "ByteLevel": return new PassThroughPostProcessor();
            case "RobertaProcessing":
            case "BertProcessing":
            {
                int cls = TokenPair(e, "cls", r, path), sep = TokenPair(e, "sep", r, path);
                return new WrapPostProcessor([cls], [sep]);
            }
            case "TemplateProcessing":
            {
                var single = r.Array(JsonReader.Member(e, "single") ?? throw r.Error($"{path}.single", "missing; expected the template for one sequence"), $"{path}.single");
                var specials = JsonReader.Member(e, "special_tokens") is { } st ? r.Object(st, $"{path}.special_tokens") : default;
                var before = new List<int>();
                var after = new List<int>();
                bool seenSequence = false;
                int i = 0;
                foreach (var piece in single.EnumerateArray())
                {
                    string where = $"{path}.single[{i++}]";
                    if (JsonReader.Member(piece, "Sequence") is not null) { seenSequence = true; continue; }
                    var special = JsonReader.Member(piece, "SpecialToken") ?? throw r.Error(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
                    var name = r.RequiredString(special, "id", where + ".SpecialToken");
                    if (specials.ValueKind != JsonValueKind.Object || JsonReader.Member(specials, name) is not { } def)
                        throw r.Error(where, $"special token '{name}' is not defined in {path}.special_tokens");
                    var ids = r.Array(JsonReader.Member(def, "ids") ?? throw r.Error($"{path}.special_tokens.{name}.ids", "missing; expected an array of ids"), $"{path}.special_tokens.{name}.ids");
                    foreach (var id in ids.EnumerateArray()) (seenSequence ? after : before).Add(r.Int(id, $"{path}.special_tokens.{name}.ids[]"));
                }
                return new WrapPostProcessor([.. before], [.. after]);
            }
            case "Sequence":
                return new SequencePostProcessor(r.List(e, "processors", path, "post-processors", (item, at) => Parse(item, r, at)));
            default:
                throw new NotSupportedException($"{r.File}: {path}: post-processor type '{type}' is not supported (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)");
        }

        int TokenPair(JsonElement obj, string name, JsonReader rd, string p)
        {
            var pair = rd.Array(JsonReader.Member(obj, name) ?? throw rd.Error($"{p}.{name}", "missing; expected [token, id]"), $"{p}.{name}");
            if (pair.GetArrayLength() != 2) throw rd.Error($"{p}.{name}", "expected [token, id]");
            return rd.Int(pair[1], $"{p}.{name}[1]");
        }
    }
}

internal sealed class PassThroughPostProcessor : PostProcessor
{
    public override int[] Process(int[] ids) => ids;
}

internal sealed class WrapPostProcessor(int[] before, int[] after) : PostProcessor
{
    public override int[] Process(int[] ids) => [.. before, .. ids, .. after];
}

internal sealed class SequencePostProcessor(IReadOnlyList<PostProcessor> items) : PostProcessor
{
    public override int[] Process(int[] ids)
    {
        foreach (var p in items) ids = p.Process(ids);
        return ids;
    }
}
