namespace Mamba4.Text;

/// <summary>
/// GPT-2's byte-level alphabet: every byte 0..255 stands for one printable char, so that any UTF-8 text
/// becomes a string the BPE vocabulary can spell. The printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
/// themselves; the other 68 (space, controls, …) take U+0100 upwards in byte order, so the space is 'Ġ' (U+0120).
/// </summary>
public static class ByteLevel
{
    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly short[] CharToByteTable = BuildCharToByte(ByteToCharTable);

    /// <summary>The char that stands for <paramref name="b"/>.</summary>
    public static char ByteToChar(byte b) => ByteToCharTable[b];

    /// <summary>The byte that <paramref name="c"/> stands for, or false when it is not in the byte-level alphabet.</summary>
    public static bool TryCharToByte(char c, out byte b)
    {
        if (c < CharToByteTable.Length && CharToByteTable[c] >= 0)
        {
            b = (byte)CharToByteTable[c];
            return true;
        }
        b = 0;
        return false;
    }

    /// <summary>The byte-level spelling of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text.ToArray());
        return Encode(bytes);
    }

    /// <summary>The byte-level spelling of <paramref name="bytes"/>.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToCharTable[bytes[i]];
        return new string(chars);
    }

    /// <summary>
    /// The bytes a token stands for, as the ByteLevel decoder reads them: when every char is in the byte-level
    /// alphabet, the bytes they stand for; otherwise (an added token such as a run of spaces) the token's own UTF-8.
    /// </summary>
    public static byte[] DecodeToken(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
            if (!TryCharToByte(token[i], out bytes[i])) return System.Text.Encoding.UTF8.GetBytes(token);
        return bytes;
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var printable = new bool[256];
        for (int b = '!'; b <= '~'; b++) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        int next = 256;
        for (int b = 0; b < 256; b++) map[b] = printable[b] ? (char)b : (char)next++;
        return map;
    }

    private static short[] BuildCharToByte(char[] byteToChar)
    {
        var table = new short[byteToChar.Max() + 1];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++) table[byteToChar[b]] = (short)b;
        return table;
    }
}

/// <summary>
/// GPT-2's pre-tokenization pattern, hand-written over code points:
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>.
/// Every char matches one alternative, so the pieces cover the text. (A .NET Regex would see a surrogate pair
/// as two chars of category Surrogate and misclassify letters outside the BMP.)
/// </summary>
public static class Gpt2Split
{
    /// <summary>The pattern as Hugging Face files spell it (a Split pre-tokenizer with it uses this class).</summary>
    public const string Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private enum Kind : byte { Other, Letter, Number, Space }

    private static readonly Kind[] Ascii = BuildAscii();

    private static Kind[] BuildAscii()
    {
        var k = new Kind[128];
        for (int c = 0; c < 128; c++)
            k[c] = c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' ? Kind.Letter
                : c is >= '0' and <= '9' ? Kind.Number
                : c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r' ? Kind.Space
                : Kind.Other;
        return k;
    }

    private static Kind KindAt(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (c < 128) { width = 1; return Ascii[c]; }
        int cp = CharClass.CodePointAt(s, i, out width);
        if (CharClass.IsWhiteSpace(cp)) return Kind.Space;
        var cat = CharClass.Category(cp);
        if (cat <= System.Globalization.UnicodeCategory.OtherLetter) return Kind.Letter;
        if (cat is System.Globalization.UnicodeCategory.DecimalDigitNumber or System.Globalization.UnicodeCategory.LetterNumber
            or System.Globalization.UnicodeCategory.OtherNumber) return Kind.Number;
        return Kind.Other;
    }

    /// <summary>The length of the piece that starts at <paramref name="i"/> (i &lt; s.Length).</summary>
    public static int NextLength(ReadOnlySpan<char> s, int i)
    {
        int n = s.Length;
        char c = s[i];
        if (c == '\'' && i + 1 < n)
        {
            char d = s[i + 1];
            if (d is 's' or 't' or 'm' or 'd') return 2;
            if (i + 2 < n)
            {
                char e = s[i + 2];
                if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return 3;
            }
        }
        int start = i;
        var kind = KindAt(s, i, out int w);
        if (c == ' ' && i + 1 < n)
        {
            var next = KindAt(s, i + 1, out int w2);
            if (next != Kind.Space)
            {
                kind = next;
                i += 1;
                w = w2;
            }
        }
        if (kind != Kind.Space)
        {
            // ' ?\p{L}+', ' ?\p{N}+' or ' ?[^\s\p{L}\p{N}]+': a run of one kind.
            i += w;
            while (i < n && KindAt(s, i, out w) == kind) i += w;
            return i - start;
        }
        // Whitespace: the run, less its last char when something non-space follows it ('\s+(?!\S)'),
        // or the whole run when that would leave nothing ('\s+').
        int j = i + w, last = i;
        while (j < n)
        {
            if (KindAt(s, j, out int wj) != Kind.Space) break;
            last = j;
            j += wj;
        }
        if (j == n || last == start) return j - start;
        return last - start;
    }
}
