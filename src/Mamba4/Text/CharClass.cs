using System.Globalization;

namespace Mamba4.Text;

/// <summary>
/// Character predicates with the meanings the Hugging Face tokenizers (Rust) give them, on code points.
/// Categories come from .NET's own Unicode tables, which work under InvariantGlobalization.
/// </summary>
internal static class CharClass
{
    /// <summary>The code point at <paramref name="i"/> (a surrogate pair read as one; a lone surrogate as itself) and its length in chars.</summary>
    public static int CodePointAt(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            return char.ConvertToUtf32(c, s[i + 1]);
        }
        width = 1;
        return c;
    }

    /// <summary>The code point that ends just before <paramref name="end"/>.</summary>
    public static int CodePointBefore(ReadOnlySpan<char> s, int end, out int width)
    {
        char c = s[end - 1];
        if (char.IsLowSurrogate(c) && end >= 2 && char.IsHighSurrogate(s[end - 2]))
        {
            width = 2;
            return char.ConvertToUtf32(s[end - 2], c);
        }
        width = 1;
        return c;
    }

    public static UnicodeCategory Category(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);

    /// <summary>Unicode White_Space (Rust <c>char::is_whitespace</c>, regex <c>\s</c>).</summary>
    public static bool IsWhiteSpace(int cp) => cp < 0x10000 && char.IsWhiteSpace((char)cp);

    /// <summary>Regex <c>\p{L}</c>.</summary>
    public static bool IsLetter(int cp) => Category(cp) <= UnicodeCategory.OtherLetter;

    /// <summary>Regex <c>\p{N}</c>, Rust <c>char::is_numeric</c>.</summary>
    public static bool IsNumber(int cp) => Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>
    /// Rust regex <c>\w</c>: Alphabetic, marks, decimal digits, connector punctuation, joiners. Alphabetic is
    /// approximated by the letter categories, letter numbers and the circled letters (its Other_Alphabetic marks
    /// are covered by the marks).
    /// </summary>
    public static bool IsWordChar(int cp)
    {
        if (cp < 0x80) return cp is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_';
        if (cp is 0x200C or 0x200D or >= 0x24B6 and <= 0x24E9) return true;
        var cat = Category(cp);
        return cat <= UnicodeCategory.OtherLetter || cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
            or UnicodeCategory.ConnectorPunctuation;
    }

    /// <summary>Hugging Face's punctuation test: ASCII punctuation or a Unicode P* category.</summary>
    public static bool IsPunctuation(int cp)
    {
        if (cp < 0x80) return cp is >= '!' and <= '/' or >= ':' and <= '@' or >= '[' and <= '`' or >= '{' and <= '~';
        return Category(cp) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>Rust <c>char::to_lowercase</c> of one code point: the full mapping (U+0130 becomes two code points).</summary>
    public static void AppendLower(System.Text.StringBuilder sb, int cp)
    {
        if (cp == 0x130) { sb.Append("i\u0307"); return; }
        if (cp < 0x10000) sb.Append(char.ToLowerInvariant((char)cp));
        else sb.Append(System.Text.Rune.ToLowerInvariant(new System.Text.Rune(cp)).ToString());
    }
}
