using System.Text;

namespace Mamba4.Text;

/// <summary>
/// Decodes ids one at a time, as a generator produces them. <see cref="Push(int)"/> returns the text that became
/// complete (possibly ""): when a token ends inside a multi-byte UTF-8 character, its bytes are held until the
/// character is complete, so no piece ever carries a broken character. <see cref="Flush"/> ends the stream. The
/// concatenation of everything returned equals <see cref="ITokenizer.Decode"/> of all the ids.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly ITokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    // Byte-level decoding: a stateful UTF-8 decoder holds incomplete sequences between calls.
    private readonly System.Text.Decoder? _utf8;
    private char[] _chars = new char[64];
    // Other decoders: Hugging Face's DecodeStream — re-decode the ids since the last complete prefix.
    private readonly List<int> _ids = new();
    private string _prefix = "";
    private int _prefixIndex;

    public StreamingDecoder(ITokenizer tokenizer, bool skipSpecialTokens = false)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
        if (tokenizer.DecodesByBytes) _utf8 = new UTF8Encoding(false, false).GetDecoder();
    }

    /// <summary>Adds one id; returns the text it completes ("" while a character is still incomplete).</summary>
    public string Push(int id)
    {
        if (_utf8 is not null) return Chars(_tokenizer.TokenBytes(id, _skipSpecialTokens), flush: false);
        if (_prefix.Length == 0 && _ids.Count > 0)
        {
            var text = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids), _skipSpecialTokens);
            if (!text.EndsWith('\uFFFD'))
            {
                _prefix = text;
                _prefixIndex = _ids.Count;
            }
        }
        _ids.Add(id);
        var full = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids), _skipSpecialTokens);
        if (full.Length <= _prefix.Length || full.EndsWith('\uFFFD') || !full.StartsWith(_prefix, StringComparison.Ordinal)) return "";
        var added = full[_prefix.Length..];
        _ids.RemoveRange(0, _prefixIndex);
        _prefix = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids), _skipSpecialTokens);
        _prefixIndex = _ids.Count;
        return added;
    }

    /// <summary>Adds one 64-bit id (ids outside the int range are unknown and contribute nothing).</summary>
    public string Push(long id) => Push(id is >= 0 and <= int.MaxValue ? (int)id : -1);

    /// <summary>Ends the stream: returns what was held back (an unfinished character as U+FFFD) and starts afresh.</summary>
    public string Flush()
    {
        if (_utf8 is not null) return Chars([], flush: true);
        string rest = "";
        if (_ids.Count > 0)
        {
            var full = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids), _skipSpecialTokens);
            rest = full[full.AsSpan().CommonPrefixLength(_prefix)..];
        }
        _ids.Clear();
        _prefix = "";
        _prefixIndex = 0;
        return rest;
    }

    private string Chars(ReadOnlySpan<byte> bytes, bool flush)
    {
        int need = _utf8!.GetCharCount(bytes, flush); // does not change the decoder's state
        if (_chars.Length < need) _chars = new char[Math.Max(need, _chars.Length * 2)];
        int n = _utf8.GetChars(bytes, _chars, flush);
        return new string(_chars, 0, n);
    }
}
