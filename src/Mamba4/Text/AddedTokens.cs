using System.Buffers;

namespace Mamba4.Text;

/// <summary>
/// A token of tokenizer.json's "added_tokens": matched in the text before the model sees it.
/// <see cref="Special"/>: skipped by Decode(skipSpecialTokens: true). <see cref="SingleWord"/>: only where no word
/// char touches it. <see cref="LStrip"/>/<see cref="RStrip"/>: takes the whitespace on that side with it.
/// <see cref="Normalized"/>: matched in the normalized text (its content normalized too), else in the raw input.
/// </summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord = false, bool LStrip = false, bool RStrip = false, bool Normalized = false);

/// <summary>A stretch of text [Start, End); <see cref="TokenId"/> is the added token it is, or -1 for plain text.</summary>
internal readonly record struct Segment(int Start, int End, int TokenId);

/// <summary>
/// Finds added tokens in text as Hugging Face does: leftmost-longest matches of all patterns, non-overlapping,
/// each then checked for single_word and widened for lstrip/rstrip. UTF-16 matching equals HF's UTF-8 matching
/// because a valid pattern can only match at character boundaries.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private sealed class Node
    {
        // Few children (the usual case): parallel arrays scanned in order; many: a dictionary.
        public char[] Keys = [];
        public Node[] Children = [];
        public Dictionary<char, Node>? Many;
        public AddedToken? Token;

        public Node? Child(char c)
        {
            if (Many is not null) return Many.TryGetValue(c, out var n) ? n : null;
            var keys = Keys;
            for (int i = 0; i < keys.Length; i++)
                if (keys[i] == c) return Children[i];
            return null;
        }

        public Node AddChild(char c)
        {
            if (Child(c) is { } existing) return existing;
            var node = new Node();
            Keys = [.. Keys, c];
            Children = [.. Children, node];
            if (Keys.Length > 8)
            {
                Many ??= new Dictionary<char, Node>();
                for (int i = 0; i < Keys.Length; i++) Many[Keys[i]] = Children[i];
            }
            return node;
        }
    }

    private readonly Node _root = new();
    private readonly SearchValues<char>? _firstChars;

    public bool IsEmpty => _firstChars is null;

    /// <summary>Patterns in priority order (for two identical patterns, the first wins).</summary>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        var first = new HashSet<char>();
        foreach (var (pattern, token) in patterns)
        {
            if (pattern.Length == 0) continue;
            var node = _root;
            foreach (var c in pattern) node = node.AddChild(c);
            node.Token ??= token;
            first.Add(pattern[0]);
        }
        if (first.Count > 0) _firstChars = SearchValues.Create([.. first]);
    }

    /// <summary>Splits <paramref name="text"/> into plain stretches and added tokens, covering it (empty text: nothing).</summary>
    public void Split(ReadOnlySpan<char> text, List<Segment> output)
    {
        if (text.IsEmpty) return;
        int startOffset = 0, pos = 0;
        while (_firstChars is not null && pos < text.Length)
        {
            int k = text[pos..].IndexOfAny(_firstChars);
            if (k < 0) break;
            int i = pos + k;
            Node? node = _root;
            AddedToken? found = null;
            int end = -1;
            for (int j = i; j < text.Length; j++)
            {
                node = node.Child(text[j]);
                if (node is null) break;
                if (node.Token is not null) { found = node.Token; end = j + 1; }
            }
            if (found is null)
            {
                pos = i + 1;
                continue;
            }
            pos = end; // the next search starts after this match, whatever happens to it below
            int start = i, stop = end;
            if (found.SingleWord)
            {
                bool startOk = start == 0 || !CharClass.IsWordChar(CharClass.CodePointBefore(text, start, out _));
                bool stopOk = stop == text.Length || !CharClass.IsWordChar(CharClass.CodePointAt(text, stop, out _));
                if (!startOk || !stopOk) continue;
            }
            if (found.LStrip)
            {
                int s = start;
                while (s > 0 && CharClass.IsWhiteSpace(CharClass.CodePointBefore(text, s, out int w))) s -= w;
                start = Math.Max(s, startOffset);
            }
            if (found.RStrip)
                while (stop < text.Length && CharClass.IsWhiteSpace(CharClass.CodePointAt(text, stop, out int w))) stop += w;
            if (startOffset < start) output.Add(new Segment(startOffset, start, -1));
            output.Add(new Segment(start, stop, found.Id));
            startOffset = stop;
        }
        if (startOffset != text.Length) output.Add(new Segment(startOffset, text.Length, -1));
    }
}
