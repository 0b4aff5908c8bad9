using System.Globalization;
using System.Text;

namespace Mamba4.Text;

/// <summary>The four Unicode normalization forms.</summary>
public enum NormalizationKind { Nfc, Nfd, Nfkc, Nfkd }

/// <summary>
/// Unicode normalization (UAX #15) from the tables in <see cref="UnicodeData"/>: decompose (canonical or
/// compatibility, Hangul algorithmically), put combining marks in canonical order, and for NFC/NFKC compose again.
/// .NET's <c>string.Normalize</c> is a no-op under InvariantGlobalization, which Mamba4 uses, hence this class.
/// </summary>
public static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compatibility = new();
        public readonly Dictionary<long, int> Compose = new();
        public readonly byte[] BmpClass = new byte[0x10000];
        public readonly Dictionary<int, byte> AstralClass = new();
        /// <summary>BMP flags: bit 0 = the char is left unchanged by NFC in any context, bit 1 = likewise for NFKC.</summary>
        public readonly byte[] BmpStable = new byte[0x10000];
        /// <summary>Astral code points NFC may change or combine: a class, a decomposition, or the second half of a composition.</summary>
        public readonly HashSet<int> AstralUnstable = new();

        public Tables()
        {
            Read(UnicodeData.CanonicalDecompositions, Canonical);
            Read(UnicodeData.CompatibilityDecompositions, Compatibility);
            var ranges = UnicodeData.CombiningClassRanges;
            for (int i = 0; i < ranges.Length; i += 3)
                for (int cp = ranges[i]; cp <= ranges[i + 1]; cp++)
                    if (cp < 0x10000) BmpClass[cp] = (byte)ranges[i + 2];
                    else AstralClass[cp] = (byte)ranges[i + 2];
            var second = new HashSet<int>();
            var comps = UnicodeData.Compositions;
            for (int i = 0; i < comps.Length; i += 3)
            {
                Compose[Key(comps[i], comps[i + 1])] = comps[i + 2];
                second.Add(comps[i + 1]);
            }
            foreach (var cp in AstralClass.Keys) AstralUnstable.Add(cp);
            foreach (var cp in Canonical.Keys) if (cp >= 0x10000) AstralUnstable.Add(cp);
            foreach (var cp in second) if (cp >= 0x10000) AstralUnstable.Add(cp);
            // Stable: class 0, no decomposition, never the second half of a composition (Hangul V and T jamo are).
            for (int c = 0; c < 0x10000; c++)
            {
                if (c is >= 0xD800 and <= 0xDFFF) continue;
                bool stable = BmpClass[c] == 0 && !Canonical.ContainsKey(c) && !second.Contains(c)
                    && c is not (>= SBase and < SBase + SCount) && c is not (>= VBase and < VBase + VCount) && c is not (> TBase and < TBase + TCount);
                if (stable) BmpStable[c] = (byte)(Compatibility.ContainsKey(c) ? 1 : 3);
            }
        }

        private static void Read(ReadOnlySpan<int> rows, Dictionary<int, int[]> into)
        {
            for (int i = 0; i < rows.Length;)
            {
                int cp = rows[i], n = rows[i + 1];
                into[cp] = rows.Slice(i + 2, n).ToArray();
                i += 2 + n;
            }
        }
    }

    private static class Holder { public static readonly Tables Instance = new(); }
    private static Tables T => Holder.Instance;

    private static long Key(int a, int b) => ((long)a << 21) | (uint)b;

    /// <summary>The canonical combining class of a code point (0 for starters).</summary>
    public static int CombiningClass(int codePoint)
        => codePoint < 0x10000 ? T.BmpClass[codePoint] : T.AstralClass.TryGetValue(codePoint, out var c) ? c : 0;

    /// <summary>True when <paramref name="text"/> is certainly unchanged by <paramref name="form"/> (a fast, conservative check).</summary>
    public static bool IsQuickStable(ReadOnlySpan<char> text, NormalizationKind form)
    {
        // Below U+00A0 nothing changes under any form; below U+00C0 nothing has a canonical decomposition;
        // below U+0300 nothing combines or reorders.
        switch (form)
        {
            case NormalizationKind.Nfd: return text.IndexOfAnyInRange('\u00C0', '\uFFFF') < 0;
            case NormalizationKind.Nfkd: return text.IndexOfAnyInRange('\u00A0', '\uFFFF') < 0;
        }
        bool nfc = form == NormalizationKind.Nfc;
        int first = nfc ? text.IndexOfAnyInRange('\u0300', '\uFFFF') : text.IndexOfAnyInRange('\u00A0', '\uFFFF');
        if (first < 0) return true;
        var t = T;
        int bit = nfc ? 1 : 2;
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if ((t.BmpStable[c] & bit) != 0) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(c, text[++i]);
                if (!t.AstralUnstable.Contains(cp) && (nfc || !t.Compatibility.ContainsKey(cp))) continue;
            }
            return false;
        }
        return true;
    }

    /// <summary>Normalizes <paramref name="text"/> to <paramref name="form"/>.</summary>
    public static string Normalize(string text, NormalizationKind form)
        => IsQuickStable(text, form) ? text : NormalizeSlow(text, form);

    /// <summary>Normalizes a span of text to <paramref name="form"/>.</summary>
    public static string Normalize(ReadOnlySpan<char> text, NormalizationKind form)
        => IsQuickStable(text, form) ? text.ToString() : NormalizeSlow(text, form);

    private static string NormalizeSlow(ReadOnlySpan<char> text, NormalizationKind form)
    {
        var t = T;
        bool compat = form is NormalizationKind.Nfkc or NormalizationKind.Nfkd;
        var cps = new List<int>(text.Length + 8);
        // 1. Decompose.
        for (int i = 0; i < text.Length;)
        {
            int cp = ReadCodePoint(text, ref i);
            if (cp is >= SBase and < SBase + SCount)
            {
                int s = cp - SBase;
                cps.Add(LBase + s / NCount);
                cps.Add(VBase + s % NCount / TCount);
                if (s % TCount != 0) cps.Add(TBase + s % TCount);
            }
            else if (compat && t.Compatibility.TryGetValue(cp, out var kd)) cps.AddRange(kd);
            else if (t.Canonical.TryGetValue(cp, out var d)) cps.AddRange(d);
            else cps.Add(cp);
        }
        // 2. Canonical ordering: a stable sort of each run of non-starters by combining class.
        CanonicalOrder(cps);
        // 3. Compose.
        if (form is NormalizationKind.Nfc or NormalizationKind.Nfkc) Compose(cps, t);
        var sb = new StringBuilder(cps.Count + 4);
        foreach (var cp in cps)
        {
            if (cp < 0x10000) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static void CanonicalOrder(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cp = cps[i], cls = CombiningClass(cp);
            if (cls == 0) continue;
            int j = i;
            while (j > 0)
            {
                int prev = CombiningClass(cps[j - 1]);
                if (prev <= cls) break;
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    private static void Compose(List<int> cps, Tables t)
    {
        if (cps.Count == 0) return;
        int starter = -1, lastClass = -1, w = 0;
        for (int r = 0; r < cps.Count; r++)
        {
            int cp = cps[r], cls = CombiningClass(cp);
            // Combine with the last starter unless blocked: something between with class 0 or >= ours.
            if (starter >= 0 && (lastClass == -1 || (lastClass != 0 && lastClass < cls)))
            {
                int composite = ComposePair(cps[starter], cp, t);
                if (composite >= 0)
                {
                    cps[starter] = composite;
                    continue;
                }
            }
            if (cls == 0) { starter = w; lastClass = -1; }
            else lastClass = cls;
            cps[w++] = cp;
        }
        cps.RemoveRange(w, cps.Count - w);
    }

    private static int ComposePair(int a, int b, Tables t)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
            return a + (b - TBase);
        return t.Compose.TryGetValue(Key(a, b), out var c) ? c : -1;
    }

    internal static int ReadCodePoint(ReadOnlySpan<char> s, ref int i)
    {
        char c = s[i++];
        if (char.IsHighSurrogate(c) && i < s.Length && char.IsLowSurrogate(s[i])) return char.ConvertToUtf32(c, s[i++]);
        return c;
    }

    /// <summary>The general category of a code point (lone surrogates count as Surrogate).</summary>
    internal static UnicodeCategory Category(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);
}
