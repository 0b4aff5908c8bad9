using System.Text.Json;

namespace Mamba4.Text;

/// <summary>Typed reads from a tokenizer file's JSON that fail with the file, the JSON path and what was expected.</summary>
internal sealed class JsonReader(string file)
{
    public string File { get; } = file;

    public TokenizerFormatException Error(string path, string message) => new(File, $"{path}: {message}");

    public static JsonDocument Parse(byte[] utf8, string file)
    {
        try
        {
            return JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            long line = (e.LineNumber ?? 0) + 1, col = (e.BytePositionInLine ?? 0) + 1;
            var reason = e.Message;
            int cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut < 0) cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0) reason = reason[..cut];
            throw new TokenizerFormatException(file, $"not valid JSON at line {line}, byte {col} of that line: {reason.TrimEnd('.', ' ')}", e);
        }
    }

    public static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>The member, or null when absent or JSON null.</summary>
    public static JsonElement? Member(JsonElement obj, string name)
        => obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public JsonElement Object(JsonElement e, string path)
        => e.ValueKind == JsonValueKind.Object ? e : throw Error(path, $"expected an object, found {Kind(e)}");

    /// <summary>The required array member <paramref name="name"/> of <paramref name="e"/>, each element parsed with its path
    /// (<c>path.name[i]</c>); missing → "expected an array of <paramref name="what"/>".</summary>
    public List<T> List<T>(JsonElement e, string name, string path, string what, Func<JsonElement, string, T> parse)
    {
        var list = Array(Member(e, name) ?? throw Error($"{path}.{name}", $"missing; expected an array of {what}"), $"{path}.{name}");
        var items = new List<T>();
        int i = 0;
        foreach (var item in list.EnumerateArray()) items.Add(parse(item, $"{path}.{name}[{i++}]"));
        return items;
    }

    public JsonElement Array(JsonElement e, string path)
        => e.ValueKind == JsonValueKind.Array ? e : throw Error(path, $"expected an array, found {Kind(e)}");

    public string String(JsonElement e, string path)
        => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Error(path, $"expected a string, found {Kind(e)}");

    public string RequiredString(JsonElement obj, string name, string path)
        => String(Member(obj, name) ?? throw Error($"{path}.{name}", "missing; expected a string"), $"{path}.{name}");

    public string? OptionalString(JsonElement obj, string name, string path)
        => Member(obj, name) is { } v ? String(v, $"{path}.{name}") : null;

    public bool Bool(JsonElement obj, string name, string path, bool fallback)
        => Member(obj, name) is { } v
            ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Error($"{path}.{name}", $"expected true or false, found {Kind(v)}")
            : fallback;

    public int Int(JsonElement e, string path)
        => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) ? i : throw Error(path, $"expected an integer, found {Kind(e)}");

    public int OptionalInt(JsonElement obj, string name, string path, int fallback)
        => Member(obj, name) is { } v ? Int(v, $"{path}.{name}") : fallback;

    public double? OptionalNumber(JsonElement obj, string name, string path)
        => Member(obj, name) is { } v ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Error($"{path}.{name}", $"expected a number, found {Kind(v)}") : null;

    /// <summary>The "type" member of a component (normalizer, pre-tokenizer, model, …).</summary>
    public string Type(JsonElement obj, string path) => RequiredString(Object(obj, path), "type", path);

    /// <summary>A single char stored as a one-char string (Metaspace's replacement, Strip's content).</summary>
    public string CharString(JsonElement obj, string name, string path, string fallback)
    {
        var s = OptionalString(obj, name, path) ?? fallback;
        if (s.Length == 0 || (s.Length > 1 && !(s.Length == 2 && char.IsSurrogatePair(s[0], s[1]))))
            throw Error($"{path}.{name}", $"expected a single character, found '{s}'");
        return s;
    }
}
