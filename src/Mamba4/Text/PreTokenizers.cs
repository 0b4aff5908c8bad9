using System.Text;
using System.Text.Json;

namespace Mamba4.Text;

/// <summary>A stretch of text on its way to the model; <see cref="AtStart"/>: it begins where the input began.</summary>
internal readonly record struct Piece(ReadOnlyMemory<char> Text, bool AtStart);

/// <summary>How a split treats the matched parts (Hugging Face's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>A tokenizer.json "pre_tokenizer": cuts each normalized piece into the words the model encodes one by one.</summary>
internal abstract class PreTokenizer
{
    public abstract void PreTokenize(Piece piece, List<Piece> output);

    public static PreTokenizer Parse(JsonElement e, JsonReader r, string path)
    {
        var type = r.Type(e, path);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(r.Bool(e, "add_prefix_space", path, true), r.Bool(e, "use_regex", path, true));
            case "Split":
                return new SplitPreTokenizer(TextPattern.Parse(e, r, path), Behavior(e, r, path, SplitBehavior.Removed), r.Bool(e, "invert", path, false));
            case "Digits":
                return new CharSplitPreTokenizer(CharClass.IsNumber, r.Bool(e, "individual_digits", path, false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
            case "Punctuation":
                return new CharSplitPreTokenizer(CharClass.IsPunctuation, Behavior(e, r, path, SplitBehavior.Isolated));
            case "WhitespaceSplit":
                return new CharSplitPreTokenizer(CharClass.IsWhiteSpace, SplitBehavior.Removed);
            case "Whitespace":
                return new WhitespacePreTokenizer();
            case "Metaspace":
            {
                var replacement = r.CharString(e, "replacement", path, "\u2581");
                var scheme = r.OptionalString(e, "prepend_scheme", path)
                    ?? (r.Bool(e, "add_prefix_space", path, true) ? "always" : "never");
                if (scheme is not ("always" or "first" or "never"))
                    throw r.Error($"{path}.prepend_scheme", $"expected \"always\", \"first\" or \"never\", found '{scheme}'");
                return new MetaspacePreTokenizer(replacement, scheme, r.Bool(e, "split", path, true));
            }
            case "Sequence":
                return new SequencePreTokenizer(r.List(e, "pretokenizers", path, "pre-tokenizers", (item, at) => Parse(item, r, at)));
            default:
                throw new NotSupportedException($"{r.File}: {path}: pre-tokenizer type '{type}' is not supported (supported: ByteLevel, Split, Digits, Punctuation, Whitespace, WhitespaceSplit, Metaspace, Sequence)");
        }
    }

    private static SplitBehavior Behavior(JsonElement e, JsonReader r, string path, SplitBehavior fallback)
    {
        var s = r.OptionalString(e, "behavior", path);
        if (s is null) return fallback;
        return s switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw r.Error($"{path}.behavior", $"expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous, found '{s}'"),
        };
    }

    /// <summary>Hugging Face's split of a piece by its parts (matches and the gaps between them, in order, covering it).</summary>
    protected static void Emit(Piece piece, List<(int Start, int End, bool Match)> parts, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        if (invert)
            for (int i = 0; i < parts.Count; i++) parts[i] = parts[i] with { Match = !parts[i].Match };
        var merged = new List<(int Start, int End, bool Remove)>(parts.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var p in parts) merged.Add((p.Start, p.End, p.Match));
                break;
            case SplitBehavior.Isolated:
                foreach (var p in parts) merged.Add((p.Start, p.End, false));
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                bool previous = false;
                foreach (var p in parts)
                {
                    if (p.Match && !previous && merged.Count > 0) merged[^1] = merged[^1] with { End = p.End };
                    else merged.Add((p.Start, p.End, false));
                    previous = p.Match;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                bool previous = false;
                for (int i = parts.Count - 1; i >= 0; i--)
                {
                    var p = parts[i];
                    if (p.Match && !previous && merged.Count > 0) merged[^1] = merged[^1] with { Start = p.Start };
                    else merged.Add((p.Start, p.End, false));
                    previous = p.Match;
                }
                merged.Reverse();
                break;
            }
            case SplitBehavior.Contiguous:
            {
                bool previous = false;
                foreach (var p in parts)
                {
                    if (p.Match == previous && merged.Count > 0) merged[^1] = merged[^1] with { End = p.End };
                    else merged.Add((p.Start, p.End, false));
                    previous = p.Match;
                }
                break;
            }
        }
        foreach (var (start, end, remove) in merged)
            if (!remove && end > start) output.Add(new Piece(piece.Text[start..end], piece.AtStart && start == 0));
    }

    /// <summary>Parts for a char predicate: each matching char alone, the runs between them as gaps.</summary>
    protected static List<(int, int, bool)> CharParts(ReadOnlySpan<char> s, Func<int, bool> predicate)
    {
        var parts = new List<(int, int, bool)>();
        int last = 0;
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            if (predicate(cp))
            {
                if (last < i) parts.Add((last, i, false));
                parts.Add((i, i + w, true));
                last = i + w;
            }
            i += w;
        }
        if (last < s.Length) parts.Add((last, s.Length, false));
        return parts;
    }

    /// <summary>Parts for a pattern: matches and the gaps between them.</summary>
    protected static List<(int, int, bool)> PatternParts(ReadOnlySpan<char> s, TextPattern pattern)
    {
        var parts = new List<(int, int, bool)>();
        int prev = 0;
        foreach (var (start, end) in pattern.Matches(s))
        {
            if (prev != start) parts.Add((prev, start, false));
            parts.Add((start, end, true));
            prev = end;
        }
        if (prev != s.Length) parts.Add((prev, s.Length, false));
        return parts;
    }
}

/// <summary>
/// GPT-2's ByteLevel pre-tokenizer: optionally a space in front, the GPT-2 split, then every UTF-8 byte spelled in the
/// byte-level alphabet. When it is the last step the spelling is left to the model (<see cref="MapBytes"/> false),
/// which reads the UTF-8 bytes directly: same result, no strings built.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    public bool AddPrefixSpace { get; } = addPrefixSpace;
    public bool UseRegex { get; } = useRegex;
    public bool MapBytes { get; set; } = true;

    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var text = piece.Text;
        if (AddPrefixSpace && !text.Span.StartsWith(' ')) text = string.Concat(" ", text.Span).AsMemory();
        if (!UseRegex)
        {
            Add(text, piece.AtStart);
            return;
        }
        var s = text.Span;
        for (int i = 0; i < s.Length;)
        {
            int n = Gpt2Split.NextLength(s, i);
            Add(text.Slice(i, n), piece.AtStart && i == 0);
            i += n;
        }

        void Add(ReadOnlyMemory<char> t, bool atStart)
            => output.Add(new Piece(MapBytes ? ByteLevel.Encode(t.Span).AsMemory() : t, atStart));
    }
}

internal sealed class SplitPreTokenizer(TextPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
        => Emit(piece, PatternParts(piece.Text.Span, pattern), behavior, invert, output);
}

internal sealed class CharSplitPreTokenizer(Func<int, bool> predicate, SplitBehavior behavior) : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
        => Emit(piece, CharParts(piece.Text.Span, predicate), behavior, false, output);
}

/// <summary>Hugging Face's Whitespace: the matches of <c>\w+|[^\w\s]+</c>.</summary>
internal sealed class WhitespacePreTokenizer : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var s = piece.Text.Span;
        for (int i = 0; i < s.Length;)
        {
            int cp = CharClass.CodePointAt(s, i, out int w);
            if (CharClass.IsWhiteSpace(cp)) { i += w; continue; }
            bool word = CharClass.IsWordChar(cp);
            int start = i;
            i += w;
            while (i < s.Length)
            {
                int c = CharClass.CodePointAt(s, i, out w);
                if (word ? !CharClass.IsWordChar(c) : CharClass.IsWordChar(c) || CharClass.IsWhiteSpace(c)) break;
                i += w;
            }
            output.Add(new Piece(piece.Text[start..i], piece.AtStart && start == 0));
        }
    }
}

/// <summary>SentencePiece-style: spaces become the replacement char (▁), one is put in front, split before each.</summary>
internal sealed class MetaspacePreTokenizer(string replacement, string prependScheme, bool split) : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var text = piece.Text.Span.ToString().Replace(" ", replacement, StringComparison.Ordinal);
        if (!text.StartsWith(replacement, StringComparison.Ordinal) && (prependScheme == "always" || (prependScheme == "first" && piece.AtStart)))
            text = replacement + text;
        var p = new Piece(text.AsMemory(), piece.AtStart);
        if (!split)
        {
            output.Add(p);
            return;
        }
        int rep = char.ConvertToUtf32(replacement, 0);
        Emit(p, CharParts(text, cp => cp == rep), SplitBehavior.MergedWithNext, false, output);
    }
}

internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> items) : PreTokenizer
{
    public IReadOnlyList<PreTokenizer> Items { get; } = items;

    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var current = new List<Piece> { piece };
        var next = new List<Piece>();
        foreach (var step in Items)
        {
            next.Clear();
            foreach (var p in current) step.PreTokenize(p, next);
            (current, next) = (next, current);
        }
        output.AddRange(current);
    }
}
