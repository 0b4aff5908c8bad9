using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mamba4.IO;

/// <summary>
/// Reads a model's configuration file (config.json of every model kind, forecaster.json): typed, bounded reads whose
/// errors are one line naming the file and the field and saying what was expected —
/// <c>&lt;path&gt;: field 'x': expected a positive integer ≤ N, got …</c>, <c>&lt;path&gt;: not valid JSON at line L,
/// position P: …</c>, <c>&lt;path&gt;: empty file</c>. All errors are <see cref="FormatException"/>. A field may have
/// several names (Hugging Face's and mamba_ssm's); the first one present is read. Absent or null fields read as null.
/// </summary>
public sealed class ConfigReader
{
    /// <summary>The largest configuration file read (config.json files are a few kB; forecaster.json holds per-column statistics).</summary>
    public const long MaxFileBytes = 16 << 20;

    private readonly JsonObject _obj;
    private readonly string _prefix;

    private ConfigReader(JsonObject obj, string source, string prefix) => (_obj, Source, _prefix) = (obj, source, prefix);

    /// <summary>The file (or description) errors name.</summary>
    public string Source { get; }

    /// <summary>Reads and parses <paramref name="path"/>: a missing file is a <see cref="FileNotFoundException"/>, anything else wrong a <see cref="FormatException"/>.</summary>
    public static ConfigReader Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path}: file not found", path);
        if (info.Length > MaxFileBytes) throw new FormatException($"{path}: {info.Length:N0} bytes, more than a configuration file may hold ({MaxFileBytes:N0})");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses <paramref name="json"/>, which must be one JSON object; <paramref name="source"/> names it in errors.</summary>
    public static ConfigReader Parse(string json, string source)
    {
        if (string.IsNullOrWhiteSpace(json)) throw new FormatException($"{source}: empty file");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(QuoteNonFiniteLiterals(json), null, new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, position {e.BytePositionInLine + 1}" : "";
            throw new FormatException($"{source}: not valid JSON{where}: {Reason(e)}", e);
        }
        return root is JsonObject obj ? new ConfigReader(obj, source, "")
            : throw new FormatException($"{source}: expected a JSON object {{ … }}, got {Describe(root)}");
    }

    /// <summary>
    /// Python's json writes float("inf") as a bare Infinity (transformers' Mamba2Config time_step_limit default), which
    /// JSON does not have: outside strings, Infinity, -Infinity and NaN become the strings "Infinity", "-Infinity" and
    /// "NaN", which the numeric reads refuse as not finite unless a field allows them (<see cref="Real(JsonNode?)"/>).
    /// </summary>
    private static string QuoteNonFiniteLiterals(string json)
    {
        if (!json.Contains("Infinity", StringComparison.Ordinal) && !json.Contains("NaN", StringComparison.Ordinal)) return json;
        var sb = new System.Text.StringBuilder(json.Length + 8);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char ch = json[i];
            if (inString)
            {
                sb.Append(ch);
                if (ch == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (ch == '"') inString = false;
                continue;
            }
            if (ch == '"') inString = true;
            string? literal = null;
            foreach (var l in (ReadOnlySpan<string>)["-Infinity", "Infinity", "NaN"])
                if (string.CompareOrdinal(json, i, l, 0, l.Length) == 0) { literal = l; break; }
            if (literal is null) { sb.Append(ch); continue; }
            sb.Append('"').Append(literal).Append('"');
            i += literal.Length - 1;
        }
        return sb.ToString();
    }

    /// <summary>A number node, or a string holding one ("1e-5", "Infinity"), as a double; null for anything else.</summary>
    public static double? Real(JsonNode? node) =>
        node is JsonValue v && (v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d)
            || v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) ? d : null;

    /// <summary>The nested object <paramref name="name"/> (required); its fields are named "name.field" in errors.</summary>
    public ConfigReader Section(string name) => Find([name]) switch
    {
        (_, JsonObject o) => new ConfigReader(o, Source, _prefix + name + "."),
        (_, var other) => throw Error(name, "an object { … }", other),
    };

    public bool Has(string name) => _obj[name] is not null;

    /// <summary>True when the field holds the string <paramref name="value"/> (a size given as "auto").</summary>
    public bool Holds(string value, params string[] names) => Find(names).Node is JsonValue v && v.TryGetValue<string>(out var s) && s == value;

    /// <summary>A size: a whole number 1 ≤ n ≤ <paramref name="max"/>.</summary>
    public int? Size(int max, params string[] names) => Integer(1, max, names);

    /// <summary>A count that may be zero: 0 ≤ n ≤ <paramref name="max"/>.</summary>
    public int? Count(int max, params string[] names) => Integer(0, max, names);

    private int? Integer(int min, int max, string[] names)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        string expected = min == 1 ? $"a positive integer ≤ {max}" : $"an integer from {min} to {max}";
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d >= min && d <= max)
            return (int)d;
        throw Error(name, expected, node);
    }

    /// <summary>Any whole number that fits 64 bits (a seed).</summary>
    public long? Integer(params string[] names)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) ? n : throw Error(name, "an integer", node);
    }

    /// <summary>A finite number (numeric strings such as "1e-12" are read too, as RecBole writes them).</summary>
    public double? Number(params string[] names) => Real(names, "a number", _ => true);

    /// <summary>A positive finite number (epsilons, time steps).</summary>
    public double? Positive(params string[] names) => Real(names, "a positive number", d => d > 0);

    public double? NonNegative(params string[] names) => Real(names, "a number ≥ 0", d => d >= 0);

    /// <summary>A dropout probability, 0 ≤ p &lt; 1.</summary>
    public float? Probability(params string[] names) => (float?)Real(names, "a probability, 0 ≤ p < 1", d => d is >= 0 and < 1);

    private double? Real(string[] names, string expected, Func<double, bool> ok)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        if (node is JsonValue v && (v.TryGetValue<double>(out var d) || v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d))
            && double.IsFinite(d) && ok(d))
            return d;
        throw Error(name, expected, node);
    }

    public bool? Bool(params string[] names)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Error(name, "true or false", node);
    }

    public string? String(params string[] names)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Error(name, "a string", node);
    }

    /// <summary>One of <paramref name="allowed"/>.</summary>
    public string? Choice(IReadOnlyList<string> allowed, params string[] names)
    {
        var (name, node) = Find(names);
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<string>(out var s) && allowed.Contains(s) ? s
            : throw Error(name, "one of " + string.Join(", ", allowed.Select(a => $"\"{a}\"")), node);
    }

    /// <summary>An array of strings (required).</summary>
    public string[] Strings(string name)
    {
        var node = _obj[name];
        if (node is JsonArray a && a.All(x => x is JsonValue v && v.GetValueKind() == JsonValueKind.String))
            return a.Select(x => x!.GetValue<string>()).ToArray();
        throw Error(name, "an array of strings", node);
    }

    /// <summary>The raw node of a field (for parts read elsewhere), or null.</summary>
    public JsonNode? Node(string name) => _obj[name];

    /// <summary>Refuses fields other than <paramref name="known"/> (for files only Mamba4 writes, where an unknown field is a mistake).</summary>
    public void RejectUnknown(IEnumerable<string> known)
    {
        var set = known.ToHashSet(StringComparer.Ordinal);
        foreach (var (key, _) in _obj)
            if (!set.Contains(key)) throw Error($"field '{_prefix}{key}' is not a known setting (expected {string.Join(", ", set)})");
    }

    /// <summary>"&lt;source&gt;: field 'x': expected …, got …".</summary>
    public FormatException Error(string field, string expected, JsonNode? got) =>
        new($"{Source}: field '{_prefix}{field}': expected {expected}, got {Describe(got)}");

    /// <summary>"&lt;source&gt;: message".</summary>
    public FormatException Error(string message) => new($"{Source}: {message}");

    private (string Name, JsonNode? Node) Find(string[] names)
    {
        foreach (var n in names)
            if (_obj[n] is { } node) return (n, node);
        return (names[0], null);
    }

    private static string Describe(JsonNode? node)
    {
        if (node is null) return "nothing";
        var text = node.ToJsonString();
        return text.Length <= 60 ? text : text[..57] + "…";
    }

    private static string Reason(JsonException e)
    {
        var reason = e.Message;
        int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut < 0) cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
        return (cut > 0 ? reason[..cut] : reason).Trim().TrimEnd('.');
    }
}
