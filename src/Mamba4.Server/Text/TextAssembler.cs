using Mamba4.Text;

namespace Mamba4.Server.Text;

/// <summary>
/// Turns generated ids into text deltas for a stream. OpenAI semantics for stop strings: the text ends
/// before the first occurrence of any of them. Text that could still become a stop string (a suffix that
/// is a prefix of one) is held back until the next token decides; so is a trailing U+FFFD (an incomplete
/// multi-byte character of a byte-level tokenizer). Ids outside the tokenizer's vocabulary decode to nothing.
/// </summary>
public sealed class TextAssembler(ITokenizer tokenizer, IReadOnlyList<string> stops)
{
    private readonly List<int> _ids = [];
    private string _text = "";
    private int _emitted;

    public bool Stopped { get; private set; }
    /// <summary>The text emitted so far (after <see cref="Flush"/>, the whole completion).</summary>
    public string Emitted => _text[.._emitted];

    /// <summary>Adds one token; returns the text that can be shown now (possibly empty).</summary>
    public string Add(long token)
    {
        if (Stopped) return "";
        if (token >= 0 && token < tokenizer.VocabSize) _ids.Add((int)token);
        _text = tokenizer.Decode(_ids);
        int stopAt = -1;
        foreach (var s in stops)
        {
            int i = _text.IndexOf(s, Math.Max(0, _emitted - s.Length + 1), StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
        }
        if (stopAt >= 0)
        {
            Stopped = true;
            return Advance(Math.Max(stopAt, _emitted));
        }
        int hold = 0;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, _text.Length); k > hold; k--)
                if (_text.AsSpan(_text.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        if (hold == 0 && _text.Length > 0 && _text[^1] == '\uFFFD') hold = 1;
        return Advance(Math.Max(_emitted, _text.Length - hold));
    }

    /// <summary>The end of the stream: whatever was held back (no stop string completed it).</summary>
    public string Flush() => Stopped ? "" : Advance(_text.Length);

    private string Advance(int to)
    {
        var delta = _text[_emitted..to];
        _emitted = to;
        return delta;
    }
}
