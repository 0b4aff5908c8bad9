using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Mamba4.Text;

/// <summary>
/// A tokenizer.json "normalizer": text → text, applied to each stretch of input between added tokens that are
/// not themselves normalized. Returns its input unchanged (the same memory) when there is nothing to do.
/// </summary>
internal abstract class Normalizer
{
    public abstract ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text);

    public string Normalize(string text) => Normalize(text.AsMemory()).ToString();

    public static Normalizer Parse(JsonElement e, JsonReader r, string path)
    {
        var type = r.Type(e, path);
        switch (type)
        {
            case "NFC": return new UnicodeNormalizer(NormalizationKind.Nfc);
            case "NFD": return new UnicodeNormalizer(NormalizationKind.Nfd);
            case "NFKC": return new UnicodeNormalizer(NormalizationKind.Nfkc);
            case "NFKD": return new UnicodeNormalizer(NormalizationKind.Nfkd);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "Nmt": return new NmtNormalizer();
            case "ByteLevel": return new ByteLevelNormalizer();
            case "Strip":
                return new StripNormalizer(r.Bool(e, "strip_left", path, true), r.Bool(e, "strip_right", path, true));
            case "Prepend":
                return new PrependNormalizer(r.RequiredString(e, "prepend", path));
            case "Replace":
                return new ReplaceNormalizer(TextPattern.Parse(e, r, path), r.RequiredString(e, "content", path));
            case "BertNormalizer":
            {
                bool lowercase = r.Bool(e, "lowercase", path, true);
                bool? strip = JsonReader.Member(e, "strip_accents") is { } s ? r.Bool(e, "strip_accents", path, false) : null;
                return new BertNormalizer(r.Bool(e, "clean_text", path, true), r.Bool(e, "handle_chinese_chars", path, true), strip ?? lowercase, lowercase);
            }
            case "Sequence":
                return new SequenceNormalizer(r.List(e, "normalizers", path, "normalizers", (item, at) => Parse(item, r, at)));
            default:
                throw new NotSupportedException($"{r.File}: {path}: normalizer type '{type}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Nmt, ByteLevel, BertNormalizer, Sequence)");
        }
    }

    protected static ReadOnlyMemory<char> Changed(StringBuilder sb) => sb.ToString().AsMemory();
}

internal sealed class UnicodeNormalizer(NormalizationKind form) : Normalizer
{
    public NormalizationKind Form { get; } = form;

    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
        => UnicodeNormalization.IsQuickStable(text.Span, Form) ? text : UnicodeNormalization.Normalize(text.Span, Form).AsMemory();
}

internal sealed class LowercaseNormalizer : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        if (s.IndexOfAnyInRange('A', 'Z') < 0 && s.IndexOfAnyInRange('\u0080', '\uFFFF') < 0) return text;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            CharClass.AppendLower(sb, cp);
            i += w;
        }
        return Changed(sb);
    }
}

internal sealed class StripAccentsNormalizer : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text) => Filter(text, static cp => CharClass.Category(cp) != System.Globalization.UnicodeCategory.NonSpacingMark);

    public static ReadOnlyMemory<char> Filter(ReadOnlyMemory<char> text, Func<int, bool> keep)
    {
        var s = text.Span;
        StringBuilder? sb = null;
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            if (!keep(cp)) sb ??= new StringBuilder(s.Length).Append(s[..i]);
            else sb?.Append(s.Slice(i, w));
            i += w;
        }
        return sb is null ? text : Changed(sb);
    }
}

internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        int start = 0, end = s.Length;
        if (left)
            while (start < end && CharClass.IsWhiteSpace(CharClass.CodePointAt(s, start, out int w))) start += w;
        if (right)
            while (end > start && CharClass.IsWhiteSpace(CharClass.CodePointBefore(s, end, out int w))) end -= w;
        return text[start..end];
    }
}

internal sealed class PrependNormalizer(string prepend) : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
        => text.Length == 0 || prepend.Length == 0 ? text : string.Concat(prepend.AsSpan(), text.Span).AsMemory();
}

internal sealed class ReplaceNormalizer(TextPattern pattern, string content) : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        var matches = pattern.Matches(s);
        if (matches.Count == 0) return text;
        var sb = new StringBuilder(s.Length);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            sb.Append(s[prev..start]).Append(content);
            prev = end;
        }
        sb.Append(s[prev..]);
        return Changed(sb);
    }
}

internal sealed class NmtNormalizer : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        StringBuilder? sb = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            bool drop = c is >= '\u0001' and <= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or '\u008F' or '\u009F';
            char mapped = c is '\t' or '\n' or '\f' or '\r' or '\u1680' or >= '\u200B' and <= '\u200F' or '\u2028' or '\u2029' or '\u2581' or '\uFEFF' or '\uFFFD' ? ' ' : c;
            if (drop || mapped != c) sb ??= new StringBuilder(s.Length).Append(s[..i]);
            if (!drop) sb?.Append(mapped);
        }
        return sb is null ? text : Changed(sb);
    }
}

internal sealed class ByteLevelNormalizer : Normalizer
{
    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
        => text.Length == 0 ? text : ByteLevel.Encode(text.Span).AsMemory();
}

internal sealed class BertNormalizer(bool cleanText, bool chineseChars, bool stripAccents, bool lowercase) : Normalizer
{
    private static readonly UnicodeNormalizer Nfd = new(NormalizationKind.Nfd);
    private static readonly StripAccentsNormalizer Strip = new();
    private static readonly LowercaseNormalizer Lower = new();

    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        if (cleanText) text = Clean(text);
        if (chineseChars) text = PadChinese(text);
        if (stripAccents) text = Strip.Normalize(Nfd.Normalize(text));
        if (lowercase) text = Lower.Normalize(text);
        return text;
    }

    private static ReadOnlyMemory<char> Clean(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        var sb = new StringBuilder(s.Length);
        bool changed = false;
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            i += w;
            bool control = cp is not ('\t' or '\n' or '\r') && CharClass.Category(cp) is System.Globalization.UnicodeCategory.Control
                or System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.OtherNotAssigned
                or System.Globalization.UnicodeCategory.PrivateUse or System.Globalization.UnicodeCategory.Surrogate;
            if (cp == 0 || cp == 0xFFFD || control) { changed = true; continue; }
            if (cp is '\t' or '\n' or '\r' || CharClass.IsWhiteSpace(cp))
            {
                if (cp != ' ') changed = true;
                sb.Append(' ');
            }
            else sb.Append(s.Slice(i - w, w));
        }
        return changed ? Changed(sb) : text;
    }

    private static bool IsChinese(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
        or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF
        or >= 0x2F800 and <= 0x2FA1F;

    private static ReadOnlyMemory<char> PadChinese(ReadOnlyMemory<char> text)
    {
        var s = text.Span;
        StringBuilder? sb = null;
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            if (IsChinese(cp))
            {
                sb ??= new StringBuilder(s.Length + 8).Append(s[..i]);
                sb.Append(' ').Append(s.Slice(i, w)).Append(' ');
            }
            else sb?.Append(s.Slice(i, w));
            i += w;
        }
        return sb is null ? text : Changed(sb);
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> items) : Normalizer
{
    public IReadOnlyList<Normalizer> Items { get; } = items;

    public override ReadOnlyMemory<char> Normalize(ReadOnlyMemory<char> text)
    {
        foreach (var n in Items) text = n.Normalize(text);
        return text;
    }
}

/// <summary>A tokenizer.json pattern: <c>{"String": "…"}</c> (literal) or <c>{"Regex": "…"}</c>.</summary>
internal sealed class TextPattern
{
    private readonly string? _literal;
    private readonly Regex? _regex;

    /// <summary>The GPT-2 split pattern, which is matched by <see cref="Gpt2Split"/> instead of a Regex.</summary>
    public bool IsGpt2 { get; }

    public string Source { get; }

    private TextPattern(string? literal, Regex? regex, bool gpt2, string source)
    {
        _literal = literal;
        _regex = regex;
        IsGpt2 = gpt2;
        Source = source;
    }

    public static TextPattern Parse(JsonElement owner, JsonReader r, string path)
    {
        var p = r.Object(JsonReader.Member(owner, "pattern") ?? throw r.Error($"{path}.pattern", "missing; expected {\"String\": ...} or {\"Regex\": ...}"), $"{path}.pattern");
        if (r.OptionalString(p, "String", $"{path}.pattern") is { } literal)
        {
            if (literal.Length == 0) throw r.Error($"{path}.pattern.String", "expected a non-empty string");
            return new TextPattern(literal, null, false, literal);
        }
        if (r.OptionalString(p, "Regex", $"{path}.pattern") is { } regex)
        {
            if (regex == Gpt2Split.Pattern) return new TextPattern(null, null, true, regex);
            try
            {
                return new TextPattern(null, new Regex(regex, RegexOptions.CultureInvariant | RegexOptions.Compiled), false, regex);
            }
            catch (ArgumentException e)
            {
                throw new NotSupportedException($"{r.File}: {path}.pattern.Regex: the pattern '{regex}' is not supported by .NET regular expressions ({e.Message})", e);
            }
        }
        throw r.Error($"{path}.pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
    }

    /// <summary>Non-overlapping matches, left to right, as [start, end) (zero-length ones included for regexes).</summary>
    public List<(int Start, int End)> Matches(ReadOnlySpan<char> s)
    {
        var list = new List<(int, int)>();
        if (_literal is not null)
        {
            int i = 0;
            while (i <= s.Length - _literal.Length)
            {
                int k = s[i..].IndexOf(_literal, StringComparison.Ordinal);
                if (k < 0) break;
                list.Add((i + k, i + k + _literal.Length));
                i += k + _literal.Length;
            }
        }
        else if (IsGpt2)
        {
            for (int i = 0; i < s.Length;)
            {
                int n = Gpt2Split.NextLength(s, i);
                list.Add((i, i + n));
                i += n;
            }
        }
        else
        {
            foreach (var m in _regex!.EnumerateMatches(s)) list.Add((m.Index, m.Index + m.Length));
        }
        return list;
    }
}
