namespace Mamba4.Text;

/// <summary>Text ↔ token ids. Implementations are safe to use from several threads at once.</summary>
public interface ITokenizer
{
    /// <summary>One more than the largest id the tokenizer can produce (the rows a model's embedding needs).</summary>
    int VocabSize { get; }

    /// <summary>The ids of <paramref name="text"/>, with no special tokens added around them (added tokens written in the text are matched).</summary>
    int[] Encode(string text);

    /// <summary>
    /// The text of <paramref name="ids"/>. Ids the tokenizer does not know are skipped (as Hugging Face does);
    /// <paramref name="skipSpecialTokens"/> also skips the special tokens (such as &lt;|endoftext|&gt;).
    /// </summary>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false);

    /// <summary>The token string of <paramref name="id"/>, or null when there is none.</summary>
    string? IdToToken(int id);

    /// <summary>The id of the token string <paramref name="token"/>, or null when there is none.</summary>
    int? TokenToId(string token);

    /// <summary>Whether <paramref name="id"/> is a special token (skipped by Decode(skipSpecialTokens: true)).</summary>
    bool IsSpecial(int id);

    /// <summary>
    /// True when decoded text is exactly the UTF-8 decoding (invalid sequences as U+FFFD) of the ids'
    /// <see cref="TokenBytes"/> laid end to end, as for byte-level BPE. <see cref="StreamingDecoder"/> then holds back
    /// partial characters byte-exactly; otherwise it re-decodes a short window of ids.
    /// </summary>
    bool DecodesByBytes { get; }

    /// <summary>
    /// The UTF-8 bytes <paramref name="id"/> contributes to decoded text when <see cref="DecodesByBytes"/> (empty for
    /// unknown ids, and for special tokens when <paramref name="skipSpecialTokens"/>).
    /// </summary>
    ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecialTokens = false);
}

/// <summary>Conveniences over <see cref="ITokenizer"/>: 64-bit ids (as the models use), streaming.</summary>
public static class TokenizerExtensions
{
    /// <summary>Decodes 64-bit ids; ids outside the int range are unknown and skipped.</summary>
    public static string Decode(this ITokenizer tokenizer, ReadOnlySpan<long> ids, bool skipSpecialTokens = false)
    {
        var ints = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) ints[i] = ids[i] is >= 0 and <= int.MaxValue ? (int)ids[i] : -1;
        return tokenizer.Decode(ints, skipSpecialTokens);
    }

    /// <summary>A decoder that takes ids one at a time and gives back text as soon as it is made of whole characters.</summary>
    public static StreamingDecoder CreateStreamingDecoder(this ITokenizer tokenizer, bool skipSpecialTokens = false) => new(tokenizer, skipSpecialTokens);
}
