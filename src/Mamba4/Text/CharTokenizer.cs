using System.Text;
using System.Text.Json;

namespace Mamba4.Text;

/// <summary>
/// Character-level tokenizer for tiny experiments: the vocabulary is the distinct characters (code points) of a
/// text, sorted by code point, so ids match Python's <c>sorted(set(text))</c>. Saved as
/// <c>{"type": "char", "vocab": ["\n", " ", "!", …]}</c>. A lone surrogate decodes as U+FFFD.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    public const string TypeName = "char";

    private readonly string[] _chars;
    private readonly Dictionary<int, int> _idByCodePoint = new();
    private readonly byte[][] _bytes;

    /// <summary>The characters, by id.</summary>
    public IReadOnlyList<string> Characters => _chars;

    /// <inheritdoc/>
    public int VocabSize => _chars.Length;

    /// <inheritdoc/>
    public bool DecodesByBytes => true;

    /// <summary>A tokenizer over the given characters (each exactly one code point, no repeats), ids in the given order.</summary>
    public CharTokenizer(IEnumerable<string> characters)
    {
        _chars = characters.ToArray();
        _bytes = new byte[_chars.Length][];
        for (int i = 0; i < _chars.Length; i++)
        {
            var c = _chars[i] ?? throw new ArgumentException($"character {i} is null", nameof(characters));
            if (c.Length == 0 || CodePoint(c, 0, out int w) is var cp && w != c.Length)
                throw new ArgumentException($"character {i} ('{c}') must be exactly one character (code point)", nameof(characters));
            if (!_idByCodePoint.TryAdd(cp, i))
                throw new ArgumentException($"character {i} ('{c}', U+{cp:X4}) repeats character {_idByCodePoint[cp]}", nameof(characters));
            _bytes[i] = Encoding.UTF8.GetBytes(c);
        }
    }

    /// <summary>The distinct characters of <paramref name="text"/>, sorted by code point.</summary>
    public static CharTokenizer FromText(string text)
    {
        var set = new SortedSet<int>();
        for (int i = 0; i < text.Length;)
        {
            set.Add(CodePoint(text, i, out int w));
            i += w;
        }
        return new CharTokenizer(set.Select(cp => cp is >= 0xD800 and <= 0xDFFF ? ((char)cp).ToString() : char.ConvertFromUtf32(cp)));
    }

    /// <summary>Reads a file written by <see cref="Save"/>.</summary>
    public static CharTokenizer FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        using var doc = JsonReader.Parse(File.ReadAllBytes(path), path);
        return FromJson(doc.RootElement, path);
    }

    internal static CharTokenizer FromJson(JsonElement root, string source)
    {
        var r = new JsonReader(source);
        r.Object(root, "$");
        var type = r.RequiredString(root, "type", "$");
        if (type != TypeName) throw r.Error("type", $"expected \"{TypeName}\", found '{type}'");
        var vocab = r.Array(JsonReader.Member(root, "vocab") ?? throw r.Error("vocab", "missing; expected an array of characters"), "vocab");
        var chars = new List<string>();
        int i = 0;
        foreach (var c in vocab.EnumerateArray()) chars.Add(r.String(c, $"vocab[{i++}]"));
        try
        {
            return new CharTokenizer(chars);
        }
        catch (ArgumentException e)
        {
            throw r.Error("vocab", e.Message.Split(" (Parameter")[0]);
        }
    }

    /// <summary>The tokenizer as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dictionary<string, object> { ["type"] = TypeName, ["vocab"] = _chars },
        new JsonSerializerOptions { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    /// <summary>Writes the tokenizer as JSON (a temporary file renamed into place, so a reader never sees half a file).</summary>
    public void Save(string path) => IO.AtomicFile.WriteAllText(path, ToJson());

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">A character that is not in the vocabulary (named, with its index).</exception>
    public int[] Encode(string text)
    {
        var ids = new List<int>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int cp = CodePoint(text, i, out int w);
            if (!_idByCodePoint.TryGetValue(cp, out int id))
                throw new ArgumentException($"character '{text.Substring(i, w)}' (U+{cp:X4}) at index {i} is not among the tokenizer's {_chars.Length} characters");
            ids.Add(id);
            i += w;
        }
        return ids.ToArray();
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>(ids.Length);
        foreach (var id in ids) bytes.AddRange(TokenBytes(id));
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    /// <inheritdoc/>
    public ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecialTokens = false) => (uint)id < (uint)_bytes.Length ? _bytes[id] : default;

    /// <inheritdoc/>
    public string? IdToToken(int id) => (uint)id < (uint)_chars.Length ? _chars[id] : null;

    /// <inheritdoc/>
    public int? TokenToId(string token)
        => token.Length > 0 && CodePoint(token, 0, out int w) is var cp && w == token.Length && _idByCodePoint.TryGetValue(cp, out int id) ? id : null;

    /// <inheritdoc/>
    public bool IsSpecial(int id) => false;

    private static int CodePoint(string s, int i, out int width) => CharClass.CodePointAt(s, i, out width);
}

/// <summary>Opens whichever tokenizer a file holds.</summary>
public static class Tokenizer
{
    /// <summary>
    /// A Hugging Face tokenizer.json (or a directory holding one) as a <see cref="BpeTokenizer"/>, or a file written
    /// by <see cref="CharTokenizer.Save"/> as a <see cref="CharTokenizer"/>.
    /// </summary>
    public static ITokenizer Load(string path)
    {
        path = FilePath(path);
        using var doc = JsonReader.Parse(File.ReadAllBytes(path), path);
        var root = doc.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            && t.GetString() == CharTokenizer.TypeName)
            return CharTokenizer.FromJson(root, path);
        return BpeTokenizer.FromJson(root, path);
    }

    /// <summary>The tokenizer file a path names: the file itself, or a directory's tokenizer.json; FileNotFoundException if absent.</summary>
    internal static string FilePath(string path)
    {
        if (Directory.Exists(path))
        {
            var inside = Path.Combine(path, "tokenizer.json");
            if (!File.Exists(inside)) throw new FileNotFoundException($"{path}: the directory has no tokenizer.json", inside);
            return inside;
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        return path;
    }
}
