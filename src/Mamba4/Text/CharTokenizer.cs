using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mamba4.Text;

/// <summary>
/// Character-level tokenizer for tiny experiments: the sorted distinct characters of a training text
/// (UTF-16 code units, so every string round-trips). Saved as JSON: {"type": "char", "chars": "..."}.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    public const string FileName = "char_tokenizer.json";
    private readonly string _chars;
    private readonly Dictionary<char, int> _index;

    public CharTokenizer(string chars)
    {
        _chars = chars;
        _index = chars.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
    }

    public static CharTokenizer FromText(string text) => new(new string(text.Distinct().Order().ToArray()));

    public int VocabSize => _chars.Length;

    public int[] Encode(string text)
    {
        var ids = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            if (!_index.TryGetValue(text[i], out ids[i]))
                throw new ArgumentException($"character U+{(int)text[i]:X4} at offset {i} is not in the tokenizer's {VocabSize} characters");
        }
        return ids;
    }

    public string Decode(IEnumerable<int> ids) => new(ids.Select(i => _chars[i]).ToArray());

    public void Save(string path) => File.WriteAllText(path, new JsonObject { ["type"] = "char", ["chars"] = _chars }.ToJsonString());

    public static CharTokenizer Load(string path)
    {
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
            if (o?["type"]?.GetValue<string>() != "char" || o["chars"]?.GetValue<string>() is not { Length: > 0 } chars)
                throw new InvalidDataException($"{path}: expected {{\"type\": \"char\", \"chars\": \"...\"}}");
            return new CharTokenizer(chars);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }
}
