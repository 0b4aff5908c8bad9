using System.Text;
using System.Text.Json;

namespace Mamba4.Text;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model (GPT-2 / GPT-NeoX byte-level BPE and relatives), encoding and
/// decoding exactly as the <c>tokenizers</c> library does:
/// <list type="number">
/// <item>added tokens that are not normalized are found in the raw text (leftmost-longest, single_word/lstrip/rstrip);</item>
/// <item>each stretch between them is normalized (NFC, …) and searched for the normalized added tokens;</item>
/// <item>each remaining stretch is pre-tokenized (ByteLevel: GPT-2 split + byte alphabet; Split, Sequence, …);</item>
/// <item>each word goes through the BPE merges (cached per word).</item>
/// </list>
/// Decoding maps ids back to token strings (added tokens first) and runs the decoder (ByteLevel: bytes → UTF-8).
/// Encode(text) is HF's <c>encode(text, add_special_tokens=False)</c>; Encode(text, true) applies the post-processor.
/// The file's truncation and padding settings are not applied (they concern batches).
/// </summary>
public sealed class BpeTokenizer : ITokenizer
{
    private readonly BpeModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly ByteLevelPreTokenizer? _fastByteLevel;
    private readonly bool _bytesMode;
    private readonly PostProcessor? _postProcessor;
    private readonly Decoder? _decoder;
    private readonly bool _byteDecode;
    private readonly AddedTokenMatcher _rawMatcher, _normalizedMatcher;
    private readonly Dictionary<int, AddedToken> _addedById = new();
    private readonly Dictionary<string, int> _addedByContent = new(StringComparer.Ordinal);
    private readonly HashSet<int> _specialIds = new();
    private readonly byte[]?[] _tokenBytes;

    [ThreadStatic] private static EncodeBuffers? t_buffers;

    private sealed class EncodeBuffers
    {
        public readonly List<Segment> Raw = new(), Normalized = new();
        public readonly List<Piece> Pieces = new();
    }

    internal BpeModel Model => _model;

    /// <summary>The file the tokenizer was read from.</summary>
    public string Source { get; }

    /// <summary>The added tokens, with the ids Hugging Face gives them, in file order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>What Hugging Face would warn about while loading (an added token whose id in the file is not the one it gets).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <summary>Entries of the model's vocabulary (without the added tokens that are not in it).</summary>
    public int ModelVocabCount => _model.VocabCount;

    /// <summary>Number of merges.</summary>
    public int MergeCount => _model.MergeCount;

    /// <summary>Most words kept in the encode cache (default 100,000; 0 turns it off). Once full, new words are not stored.</summary>
    public int CacheCapacity { get => _model.CacheCapacity; set => _model.CacheCapacity = value; }

    /// <summary>Words in the encode cache.</summary>
    public int CacheCount => _model.CacheCount;

    /// <summary>Empties the encode cache.</summary>
    public void ClearCache() => _model.ClearCache();

    /// <inheritdoc/>
    public bool DecodesByBytes => _byteDecode;

    private BpeTokenizer(string source, BpeModel model, Normalizer? normalizer, PreTokenizer? preTokenizer, PostProcessor? postProcessor,
        Decoder? decoder, List<(AddedToken Token, int FileId)> added)
    {
        Source = source;
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _byteDecode = decoder is ByteLevelDecoder || (decoder is SequenceDecoder { Items: [ByteLevelDecoder] });

        // The model sees UTF-8 bytes directly when the last pre-tokenization step is ByteLevel.
        var last = preTokenizer is SequencePreTokenizer seq && seq.Items.Count > 0 ? seq.Items[^1] : preTokenizer;
        if (last is ByteLevelPreTokenizer bl)
        {
            bl.MapBytes = false;
            _bytesMode = true;
            if (ReferenceEquals(last, preTokenizer) && bl.UseRegex) _fastByteLevel = bl;
        }

        // Added tokens, as Hugging Face's AddedVocabulary.add_tokens assigns them: an existing token keeps its id, a
        // new one gets the next id after the model's vocabulary / the previous added tokens.
        var warnings = new List<string>();
        var specialOrder = new List<string>();
        var classicOrder = new List<string>();
        var specialContents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (token, _) in added)
            if (token.Special && token.Content.Length > 0 && specialContents.Add(token.Content)) specialOrder.Add(token.Content);
        var addedList = new List<AddedToken>();
        var seen = new HashSet<AddedToken>(); // HF skips a token identical (content and flags) to one already added
        foreach (var (token, fileId) in added)
        {
            if (token.Content.Length == 0 || !seen.Add(token with { Id = 0 })) continue;
            int id;
            if (_addedByContent.TryGetValue(token.Content, out var existing)) id = existing;
            else if (model.TryGetId(token.Content, out var modelId)) id = modelId;
            else if (_addedByContent.Count == 0) id = model.VocabCount;
            else
            {
                int max = _addedByContent.Values.Max();
                id = max >= model.VocabCount ? max + 1 : model.VocabCount;
            }
            if (id != fileId)
                warnings.Add($"added token '{token.Content}' has id {fileId} in the file but gets id {id}");
            var withId = token with { Id = id };
            _addedByContent[token.Content] = id;
            _addedById[id] = withId;
            addedList.Add(withId);
            if (!specialContents.Contains(token.Content)) classicOrder.Add(token.Content);
        }
        foreach (var content in specialContents) _specialIds.Add(_addedByContent[content]);
        AddedTokens = addedList;
        Warnings = warnings;

        var raw = new List<(string, AddedToken)>();
        var normalized = new List<(string, AddedToken)>();
        foreach (var content in specialOrder.Concat(classicOrder))
        {
            var token = _addedById[_addedByContent[content]];
            if (token.Normalized) normalized.Add((normalizer?.Normalize(content) ?? content, token));
            else raw.Add((content, token));
        }
        _rawMatcher = new AddedTokenMatcher(raw);
        _normalizedMatcher = new AddedTokenMatcher(normalized);

        VocabSize = Math.Max(model.IdLimit, _addedById.Count == 0 ? 0 : _addedById.Keys.Max() + 1);
        _tokenBytes = new byte[VocabSize][];
    }

    /// <summary>Reads a Hugging Face tokenizer.json (or a directory that holds one).</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="TokenizerFormatException">Not valid JSON, or not a tokenizer (the message names the file, where and what was expected).</exception>
    /// <exception cref="NotSupportedException">A component type this implementation does not have (named, with the file).</exception>
    public static BpeTokenizer FromFile(string path)
    {
        path = Tokenizer.FilePath(path);
        return FromUtf8(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a tokenizer.json given as text; <paramref name="source"/> names it in error messages.</summary>
    public static BpeTokenizer FromJson(string json, string source = "tokenizer.json") => FromUtf8(Encoding.UTF8.GetBytes(json), source);

    internal static BpeTokenizer FromUtf8(byte[] utf8, string source)
    {
        using var doc = JsonReader.Parse(utf8, source);
        return FromJson(doc.RootElement, source);
    }

    internal static BpeTokenizer FromJson(JsonElement root, string source)
    {
        var r = new JsonReader(source);
        if (root.ValueKind != JsonValueKind.Object) throw r.Error("$", $"expected a tokenizer object, found {JsonReader.Kind(root)}");
        var modelJson = JsonReader.Member(root, "model") ?? throw r.Error("model", "missing; expected the tokenizer's model (an object with \"type\": \"BPE\", \"vocab\" and \"merges\")");
        r.Object(modelJson, "model");
        var model = BpeModel.Parse(modelJson, r, "model");
        var normalizer = JsonReader.Member(root, "normalizer") is { } n ? Normalizer.Parse(n, r, "normalizer") : null;
        var pre = JsonReader.Member(root, "pre_tokenizer") is { } p ? PreTokenizer.Parse(p, r, "pre_tokenizer") : null;
        var post = JsonReader.Member(root, "post_processor") is { } pp ? PostProcessor.Parse(pp, r, "post_processor") : null;
        var decoder = JsonReader.Member(root, "decoder") is { } d ? Decoder.Parse(d, r, "decoder") : null;
        var added = new List<(AddedToken, int)>();
        if (JsonReader.Member(root, "added_tokens") is { } list)
        {
            int i = 0;
            foreach (var t in r.Array(list, "added_tokens").EnumerateArray())
            {
                string where = $"added_tokens[{i++}]";
                r.Object(t, where);
                int id = r.Int(JsonReader.Member(t, "id") ?? throw r.Error($"{where}.id", "missing; expected an integer id"), $"{where}.id");
                var content = r.RequiredString(t, "content", where);
                bool special = r.Bool(t, "special", where, false);
                added.Add((new AddedToken(id, content, special, r.Bool(t, "single_word", where, false), r.Bool(t, "lstrip", where, false),
                    r.Bool(t, "rstrip", where, false), r.Bool(t, "normalized", where, !special)), id));
            }
        }
        return new BpeTokenizer(source, model, normalizer, pre, post, decoder, added);
    }

    /// <inheritdoc/>
    public int[] Encode(string text) => Encode(text, addSpecialTokens: false);

    /// <summary>The ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> applies the post-processor (e.g. a BOS token).</summary>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var buffers = t_buffers ?? new EncodeBuffers();
        t_buffers = null; // not re-entrant: a nested call (none today) would get its own buffers
        try
        {
            EncodeInto(text, ids, buffers);
        }
        finally
        {
            t_buffers = buffers;
        }
        var result = ids.ToArray();
        return addSpecialTokens && _postProcessor is not null ? _postProcessor.Process(result) : result;
    }

    private void EncodeInto(string text, List<int> ids, EncodeBuffers b)
    {
        var raw = b.Raw;
        raw.Clear();
        if (_rawMatcher.IsEmpty) { if (text.Length > 0) raw.Add(new Segment(0, text.Length, -1)); }
        else _rawMatcher.Split(text, raw);
        foreach (var outer in raw)
        {
            if (outer.TokenId >= 0) { ids.Add(outer.TokenId); continue; }
            var normalized = text.AsMemory(outer.Start, outer.End - outer.Start);
            if (_normalizer is not null) normalized = _normalizer.Normalize(normalized);
            if (normalized.IsEmpty) continue;
            var inner = b.Normalized;
            inner.Clear();
            if (_normalizedMatcher.IsEmpty) inner.Add(new Segment(0, normalized.Length, -1));
            else _normalizedMatcher.Split(normalized.Span, inner);
            foreach (var seg in inner)
            {
                if (seg.TokenId >= 0) { ids.Add(seg.TokenId); continue; }
                var piece = new Piece(normalized[seg.Start..seg.End], outer.Start == 0 && seg.Start == 0);
                EncodePiece(piece, ids, b.Pieces);
            }
        }
    }

    private void EncodePiece(Piece piece, List<int> ids, List<Piece> pieces)
    {
        if (_fastByteLevel is { } bl)
        {
            // The common case (GPT-2, GPT-NeoX): split and hand the words to the model as text; it reads the bytes.
            var text = piece.Text;
            if (bl.AddPrefixSpace && !text.Span.StartsWith(' ')) text = string.Concat(" ", text.Span).AsMemory();
            var s = text.Span;
            var cache = _model.ThreadCache;
            for (int i = 0; i < s.Length;)
            {
                int n = Gpt2Split.NextLength(s, i);
                _model.Encode(s.Slice(i, n), bytes: true, ids, cache);
                i += n;
            }
            return;
        }
        if (_preTokenizer is null)
        {
            _model.Encode(piece.Text.Span, _bytesMode, ids);
            return;
        }
        pieces.Clear();
        _preTokenizer.PreTokenize(piece, pieces);
        foreach (var word in pieces) _model.Encode(word.Text.Span, _bytesMode, ids);
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        if (_byteDecode)
        {
            var bytes = new List<byte>(ids.Length * 4);
            foreach (var id in ids) bytes.AddRange(TokenBytes(id, skipSpecialTokens));
            return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
        }
        var tokens = new List<string>(ids.Length);
        foreach (var id in ids)
        {
            if (IdToToken(id) is not { } token) continue;
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            tokens.Add(token);
        }
        return _decoder is null ? string.Join(" ", tokens) : _decoder.Decode(tokens);
    }

    /// <inheritdoc/>
    public ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecialTokens = false)
    {
        if ((uint)id >= (uint)_tokenBytes.Length || (skipSpecialTokens && _specialIds.Contains(id))) return default;
        var bytes = _tokenBytes[id];
        if (bytes is null)
        {
            var token = IdToToken(id);
            bytes = token is null ? [] : _byteDecode ? ByteLevel.DecodeToken(token) : Encoding.UTF8.GetBytes(token);
            _tokenBytes[id] = bytes;
        }
        return bytes;
    }

    /// <inheritdoc/>
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var t) ? t.Content : _model.IdToToken(id);

    /// <inheritdoc/>
    public int? TokenToId(string token) => _addedByContent.TryGetValue(token, out var id) ? id : _model.TryGetId(token, out id) ? id : null;

    /// <inheritdoc/>
    public bool IsSpecial(int id) => _specialIds.Contains(id);

    public override string ToString()
        => $"BpeTokenizer({Source}: {ModelVocabCount} tokens, {MergeCount} merges, {AddedTokens.Count} added tokens, vocab size {VocabSize})";
}
