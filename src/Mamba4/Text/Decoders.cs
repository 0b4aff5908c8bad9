using System.Text;
using System.Text.Json;

namespace Mamba4.Text;

/// <summary>A tokenizer.json "decoder": the token strings of a Decode call → the pieces that are joined into the text.</summary>
internal abstract class Decoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    public string Decode(List<string> tokens) => string.Concat(DecodeChain(tokens));

    public static Decoder Parse(JsonElement e, JsonReader r, string path)
    {
        var type = r.Type(e, path);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "Fuse": return new FuseDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Replace": return new ReplaceDecoder(TextPattern.Parse(e, r, path), r.RequiredString(e, "content", path));
            case "Strip":
                return new StripDecoder(r.CharString(e, "content", path, " "), r.OptionalInt(e, "start", path, 0), r.OptionalInt(e, "stop", path, 0));
            case "Metaspace":
            {
                var scheme = r.OptionalString(e, "prepend_scheme", path) ?? (r.Bool(e, "add_prefix_space", path, true) ? "always" : "never");
                return new MetaspaceDecoder(r.CharString(e, "replacement", path, "\u2581"), scheme != "never");
            }
            case "Sequence":
                return new SequenceDecoder(r.List(e, "decoders", path, "decoders", (item, at) => Parse(item, r, at)));
            default:
                throw new NotSupportedException($"{r.File}: {path}: decoder type '{type}' is not supported (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)");
        }
    }
}

/// <summary>Byte-level tokens → their bytes (a token outside the alphabet: its own UTF-8) → one string, invalid UTF-8 as U+FFFD.</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens) bytes.AddRange(ByteLevel.DecodeToken(t));
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

internal sealed class FuseDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Runs of &lt;0xXX&gt; tokens → the text of those bytes (each byte → U+FFFD when the run is not valid UTF-8).</summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    private static readonly UTF8Encoding Strict = new(false, true);

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
            {
                pending.Add(b);
                continue;
            }
            Flush();
            result.Add(t);
        }
        Flush();
        return result;

        void Flush()
        {
            if (pending.Count == 0) return;
            try
            {
                result.Add(Strict.GetString(pending.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD");
            }
            pending.Clear();
        }
    }
}

internal sealed class ReplaceDecoder(TextPattern pattern, string content) : Decoder
{
    private readonly ReplaceNormalizer _replace = new(pattern, content);

    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(t => _replace.Normalize(t));
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a char from every token.</summary>
internal sealed class StripDecoder(string content, int start, int stop) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(Strip);

    private string Strip(string token)
    {
        var chars = new List<string>();
        for (int i = 0; i < token.Length;)
        {
            CharClass.CodePointAt(token, i, out int w);
            chars.Add(token.Substring(i, w));
            i += w;
        }
        int from = 0;
        for (int i = 0; i < Math.Min(start, chars.Count); i++)
        {
            if (chars[i] == content) from = i + 1;
            else break;
        }
        int to = chars.Count;
        for (int i = 0; i < stop && chars.Count - i - 1 >= 0; i++)
        {
            int index = chars.Count - i - 1;
            if (chars[index] == content) to = index;
            else break;
        }
        return to <= from ? "" : string.Concat(chars.GetRange(from, to - from));
    }
}

/// <summary>▁ → space; in the first token the ▁ are dropped when a prefix space was added on encoding.</summary>
internal sealed class MetaspaceDecoder(string replacement, bool prefixAdded) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
            result.Add(tokens[i].Replace(replacement, i == 0 && prefixAdded ? "" : " ", StringComparison.Ordinal));
        return result;
    }
}

internal sealed class SequenceDecoder(IReadOnlyList<Decoder> items) : Decoder
{
    public IReadOnlyList<Decoder> Items { get; } = items;

    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in Items) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}
