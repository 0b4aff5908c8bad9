using System.Text.Json;

namespace Mamba4.Text;

/// <summary>One message of a conversation: its role (system, user, assistant, …) and its text.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>
/// Turns a conversation into the prompt text a model was trained on: the model directory's <c>chat_template</c>
/// (tokenizer_config.json, a Jinja template rendered with the subset <see cref="Jinja"/> documents; other constructs are
/// refused when the template is read, naming the construct) or, without one, <see cref="DefaultSource"/>: one line
/// "role: content" per message, then "assistant:" for the reply. The template sees <c>messages</c> (each with
/// <c>role</c> and <c>content</c>), <c>add_generation_prompt</c>, <c>bos_token</c> and <c>eos_token</c>.
/// </summary>
public sealed class ChatTemplate
{
    public const string ConfigFile = "tokenizer_config.json";
    public const string DefaultSource = "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}";

    private readonly Jinja _template;

    private ChatTemplate(Jinja template, string source, string? bosToken, string? eosToken)
    {
        _template = template;
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
    }

    public string Source { get; }
    public string? BosToken { get; }
    /// <summary>The end-of-sequence token text (tokenizer_config.json's eos_token); a reply stops at it.</summary>
    public string? EosToken { get; }
    public bool IsDefault => Source == DefaultSource;

    public static ChatTemplate Default { get; } = Parse(DefaultSource);

    /// <summary>Parses <paramref name="source"/>; a construct outside the subset is a <see cref="ChatTemplateException"/> naming it (and <paramref name="origin"/>).</summary>
    public static ChatTemplate Parse(string source, string? bosToken = null, string? eosToken = null, string origin = "chat_template")
    {
        try { return new ChatTemplate(Jinja.Parse(source), source, bosToken, eosToken); }
        catch (ChatTemplateException e) { throw new ChatTemplateException($"{origin}: {e.Message}"); }
    }

    /// <summary>The template of a model directory: tokenizer_config.json's chat_template (a string, or a list of
    /// {name, template} of which "default" or else the first is taken), or <see cref="Default"/> (keeping its eos_token).</summary>
    public static ChatTemplate ForModelDirectory(string dir)
    {
        var path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) return Default;
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length > 16 << 20) throw new InvalidDataException($"{path}: {bytes.Length} bytes; a tokenizer configuration is at most 16 MiB");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object");
            string? bos = TokenText(root, "bos_token", path), eos = TokenText(root, "eos_token", path);
            if (!root.TryGetProperty("chat_template", out var t) || t.ValueKind == JsonValueKind.Null) return eos is null && bos is null ? Default : Parse(DefaultSource, bos, eos);
            string source = t.ValueKind switch
            {
                JsonValueKind.String => t.GetString()!,
                JsonValueKind.Array => (t.EnumerateArray().FirstOrDefault(x => x.ValueKind == JsonValueKind.Object && x.TryGetProperty("name", out var n) && n.ValueEquals("default")) is { ValueKind: JsonValueKind.Object } d ? d : t.EnumerateArray().FirstOrDefault()) is { ValueKind: JsonValueKind.Object } chosen
                    && chosen.TryGetProperty("template", out var s) && s.ValueKind == JsonValueKind.String
                    ? s.GetString()! : throw new InvalidDataException($"{path}: chat_template: expected a string or a list of {{\"name\", \"template\"}} objects"),
                _ => throw new InvalidDataException($"{path}: chat_template: expected a string or a list of {{\"name\", \"template\"}} objects, got {t.ValueKind.ToString().ToLowerInvariant()}"),
            };
            return Parse(source, bos, eos, $"{path}: chat_template");
        }
    }

    private static string? TokenText(JsonElement root, string field, string path) =>
        !root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()
        : throw new InvalidDataException($"{path}: {field}: expected a string or an object with \"content\"");

    /// <summary>The prompt of <paramref name="messages"/>; a template's raise_exception (e.g. roles that must alternate) is a <see cref="ChatTemplateException"/> with its message.</summary>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true)
    {
        var list = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = list, ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = BosToken ?? "", ["eos_token"] = EosToken ?? "",
        };
        return _template.Render(variables);
    }
}
