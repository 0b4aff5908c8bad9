using System.Text;

namespace Mamba4.Text;

/// <summary>
/// Turns generated ids into text deltas for a stream, in O(1) work per token: the library's
/// <see cref="StreamingDecoder"/> (a byte-level tokenizer's bytes go through a stateful UTF-8 decoder, so an
/// incomplete multi-byte character waits for the next id). OpenAI semantics for stop strings: the text ends
/// before the first occurrence of any of them. Text that could still become a stop string (a suffix that is a
/// prefix of one) is held back until the next token decides. Ids outside the tokenizer's vocabulary decode to nothing.
/// </summary>
public sealed class TextAssembler(ITokenizer tokenizer, IReadOnlyList<string> stops)
{
    private readonly StringBuilder _text = new();
    private readonly StreamingDecoder _decoder = new(tokenizer);
    private readonly int _longestStop = stops.Count == 0 ? 0 : stops.Max(s => s.Length);
    private int _emitted;

    public bool Stopped { get; private set; }
    /// <summary>The text emitted so far (after <see cref="Flush"/>, the whole completion).</summary>
    public string Emitted => _text.ToString(0, _emitted);

    /// <summary>Adds one token; returns the text that can be shown now (possibly empty).</summary>
    public string Add(long token)
    {
        if (Stopped) return "";
        if (token >= 0 && token < tokenizer.VocabSize) _text.Append(_decoder.Push(token));
        if (stops.Count == 0) return Advance(_text.Length);
        // A stop string can only end in the text not yet emitted (one ending earlier would have stopped the stream).
        int from = Math.Min(_text.Length, Math.Max(0, _emitted - (_longestStop - 1)));
        var window = _text.ToString(from, _text.Length - from);
        int stopAt = -1;
        foreach (var s in stops)
        {
            int i = window.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || from + i < stopAt)) stopAt = from + i;
        }
        if (stopAt >= 0)
        {
            Stopped = true;
            return Advance(Math.Max(stopAt, _emitted));
        }
        int hold = 0;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, window.Length); k > hold; k--)
                if (window.AsSpan(window.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        return Advance(Math.Max(_emitted, _text.Length - hold));
    }

    /// <summary>The end of the stream: whatever was held back (no stop string completed it).</summary>
    public string Flush()
    {
        if (Stopped) return "";
        _text.Append(_decoder.Flush());
        return Advance(_text.Length);
    }

    private string Advance(int to)
    {
        var delta = _text.ToString(_emitted, to - _emitted);
        _emitted = to;
        return delta;
    }
}
