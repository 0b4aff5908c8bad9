using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Mamba4.Text;

/// <summary>
/// The BPE model of a tokenizer.json: a vocabulary (token → id) and ranked merges. A word starts as one symbol per
/// char (per UTF-8 byte for byte-level input); the adjacent pair with the lowest merge rank is merged (the leftmost
/// when the same pair occurs twice) until no pair has a merge. Results are cached per word (bounded).
/// </summary>
internal sealed class BpeModel
{
    /// <summary>Words longer than this are not cached (as Hugging Face).</summary>
    public const int MaxCachedWordLength = 256;

    /// <summary>Largest id accepted in a vocabulary (ids index arrays).</summary>
    public const int MaxId = (1 << 26) - 1;

    /// <summary>Above this many symbols the merge loop uses a priority queue instead of rescanning the pairs.</summary>
    public const int ScanLimit = 128;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly string?[] _idToToken;
    /// <summary>(left id, right id) → (rank, merged id), both packed in a long.</summary>
    private readonly MergeTable _merges;
    private readonly int[] _byteIds = new int[256];
    private readonly bool _allBytesKnown;
    private readonly int _unkId = -1;
    // One cache per thread: no locks on the hot path (each is bounded by CacheCapacity).
    private readonly ThreadLocal<WordCache> _caches;
    private int _cacheCapacity = 100_000;

    public string? UnkToken { get; }
    public string? ContinuingSubwordPrefix { get; }
    public string? EndOfWordSuffix { get; }
    public bool FuseUnk { get; }
    public bool ByteFallback { get; }
    public bool IgnoreMerges { get; }
    public int MergeCount => _merges.Count;

    /// <summary>Most words kept in each thread's cache; once full, new words are encoded without being stored (0 turns the cache off).</summary>
    public int CacheCapacity
    {
        get => _cacheCapacity;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _cacheCapacity = value;
            foreach (var c in _caches.Values) c.Capacity = value;
        }
    }

    /// <summary>Words cached, over all threads.</summary>
    public int CacheCount => _caches.Values.Sum(c => c.Count);

    /// <summary>One more than the largest id in the vocabulary.</summary>
    public int IdLimit => _idToToken.Length;

    public int VocabCount => _vocab.Count;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, long> merges, string? unk, string? prefix, string? suffix,
        bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _caches = new ThreadLocal<WordCache>(() => new WordCache(_cacheCapacity), trackAllValues: true);
        _merges = new MergeTable(merges);
        UnkToken = unk;
        ContinuingSubwordPrefix = prefix;
        EndOfWordSuffix = suffix;
        FuseUnk = fuseUnk;
        ByteFallback = byteFallback;
        IgnoreMerges = ignoreMerges;
        int max = -1;
        foreach (var id in vocab.Values) max = Math.Max(max, id);
        _idToToken = new string?[max + 1];
        foreach (var (token, id) in vocab) _idToToken[id] = token;
        if (unk is not null && vocab.TryGetValue(unk, out var u)) _unkId = u;
        _allBytesKnown = true;
        Span<char> one = stackalloc char[1];
        for (int b = 0; b < 256; b++)
        {
            one[0] = ByteLevel.ByteToChar((byte)b);
            _byteIds[b] = _vocabBySpan.TryGetValue(one, out var id) ? id : -1;
            if (_byteIds[b] < 0) _allBytesKnown = false;
        }
    }

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocabBySpan.TryGetValue(token, out id);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public IEnumerable<KeyValuePair<string, int>> Vocabulary => _vocab;

    /// <summary>Empties every thread's cache (call it while no other thread encodes).</summary>
    public void ClearCache()
    {
        foreach (var c in _caches.Values) c.Clear();
    }

    public static BpeModel Parse(JsonElement model, JsonReader r, string path)
    {
        var type = JsonReader.Member(model, "type") is { } t ? r.String(t, $"{path}.type") : null;
        if (type is not null && type != "BPE")
            throw r.Error($"{path}.type", $"model type '{type}' is not supported; expected 'BPE' (a byte-level BPE tokenizer such as GPT-2's or GPT-NeoX's)");
        if (type is null && JsonReader.Member(model, "merges") is null)
            throw r.Error($"{path}.type", "missing; expected 'BPE'");
        var dropout = r.OptionalNumber(model, "dropout", path);
        if (dropout is > 0)
            throw new NotSupportedException($"{r.File}: {path}.dropout: BPE dropout ({dropout}) makes encoding random and is not supported; set it to null");

        var vocabJson = JsonReader.Member(model, "vocab") ?? throw r.Error($"{path}.vocab", "missing; expected an object mapping each token to its id");
        r.Object(vocabJson, $"{path}.vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabJson.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id is < 0 or > MaxId)
                throw r.Error($"{path}.vocab[{JsonSerializer.Serialize(p.Name)}]", $"expected an integer id from 0 to {MaxId}, found {(p.Value.ValueKind == JsonValueKind.Number ? p.Value.GetRawText() : JsonReader.Kind(p.Value))}");
            vocab[p.Name] = id;
        }

        string? prefix = r.OptionalString(model, "continuing_subword_prefix", path);
        string? suffix = r.OptionalString(model, "end_of_word_suffix", path);
        var mergesJson = r.Array(JsonReader.Member(model, "merges") ?? throw r.Error($"{path}.merges", "missing; expected an array of merges"), $"{path}.merges");
        var merges = new Dictionary<long, long>(mergesJson.GetArrayLength());
        int rank = 0;
        var bySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        var mergedBuffer = new char[64];
        foreach (var m in mergesJson.EnumerateArray())
        {
            string Where() => $"{path}.merges[{rank}]";
            string? line = null, left = null, right = null;
            ReadOnlySpan<char> a, b;
            if (m.ValueKind == JsonValueKind.String)
            {
                line = m.GetString()!;
                int space = line.IndexOf(' ');
                if (space < 0) throw r.Error(Where(), $"expected two tokens separated by a space, found '{line}'");
                a = line.AsSpan(0, space);
                b = line.AsSpan(space + 1);
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
            {
                left = r.String(m[0], Where() + "[0]");
                right = r.String(m[1], Where() + "[1]");
                a = left;
                b = right;
            }
            else throw r.Error(Where(), $"expected \"a b\" or [\"a\", \"b\"], found {JsonReader.Kind(m)}");
            if (!bySpan.TryGetValue(a, out int ia)) throw r.Error(Where(), $"the merge names token '{a}', which is not in {path}.vocab");
            if (!bySpan.TryGetValue(b, out int ib)) throw r.Error(Where(), $"the merge names token '{b}', which is not in {path}.vocab");
            if (prefix is not null && b.StartsWith(prefix, StringComparison.Ordinal)) b = b[prefix.Length..];
            if (mergedBuffer.Length < a.Length + b.Length) mergedBuffer = new char[(a.Length + b.Length) * 2];
            a.CopyTo(mergedBuffer);
            b.CopyTo(mergedBuffer.AsSpan(a.Length));
            var merged = mergedBuffer.AsSpan(0, a.Length + b.Length);
            if (!bySpan.TryGetValue(merged, out int im))
                throw r.Error(Where(), $"the merge of '{a}' and '{(right ?? line![(a.Length + 1)..])}' gives '{merged}', which is not in {path}.vocab");
            merges[Pair(ia, ib)] = ((long)rank << 32) | (uint)im;
            rank++;
        }

        return new BpeModel(vocab, merges, r.OptionalString(model, "unk_token", path), prefix, suffix,
            r.Bool(model, "fuse_unk", path, false), r.Bool(model, "byte_fallback", path, false), r.Bool(model, "ignore_merges", path, false));
    }

    private static long Pair(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>
    /// Appends the ids of one pre-tokenized word. <paramref name="bytes"/>: the word is plain text whose UTF-8 bytes
    /// the model sees in the byte-level alphabet (the ByteLevel pre-tokenizer's spelling, left to the model).
    /// </summary>
    public void Encode(ReadOnlySpan<char> word, bool bytes, List<int> output) => Encode(word, bytes, output, _caches.Value!);

    /// <summary>The calling thread's cache, to fetch once per text rather than once per word.</summary>
    public WordCache ThreadCache => _caches.Value!;

    public void Encode(ReadOnlySpan<char> word, bool bytes, List<int> output, WordCache cache)
    {
        if (word.IsEmpty) return;
        if (word.Length > MaxCachedWordLength || cache.Capacity == 0)
        {
            EncodeUncached(word, bytes, output);
            return;
        }
        int hash = WordCache.Hash(word);
        if (cache.TryGet(word, hash, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int before = output.Count;
        EncodeUncached(word, bytes, output);
        cache.Add(word, hash, CollectionsMarshal.AsSpan(output)[before..]);
    }

    private void EncodeUncached(ReadOnlySpan<char> word, bool bytes, List<int> output)
    {
        if (bytes && (!_allBytesKnown || ContinuingSubwordPrefix is not null || EndOfWordSuffix is not null || IgnoreMerges))
        {
            // Rare configurations: spell the word in the byte-level alphabet and take the general path.
            EncodeChars(ByteLevel.Encode(word), output);
            return;
        }
        if (!bytes)
        {
            EncodeChars(word, output);
            return;
        }
        int max = Encoding.UTF8.GetMaxByteCount(word.Length);
        byte[]? rented = null;
        Span<byte> utf8 = max <= 512 ? stackalloc byte[max] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(max));
        int n = Encoding.UTF8.GetBytes(word, utf8);
        if (n > ScanLimit)
        {
            var symbols = new int[n];
            for (int i = 0; i < n; i++) symbols[i] = _byteIds[utf8[i]];
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            MergeWithQueue(symbols, n, output);
            return;
        }
        Span<int> small = stackalloc int[n];
        for (int i = 0; i < n; i++) small[i] = _byteIds[utf8[i]];
        if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        MergeByScan(small, output);
    }

    /// <summary>Hugging Face's merge_word: one symbol per code point (prefix/suffix, byte fallback, unknown token), then the merges.</summary>
    private void EncodeChars(ReadOnlySpan<char> word, List<int> output)
    {
        if (IgnoreMerges && _vocabBySpan.TryGetValue(word, out var whole))
        {
            output.Add(whole);
            return;
        }
        var symbols = new List<int>(word.Length);
        int pendingUnk = -1; // count of chars covered by a pending unknown token (fused), -1: none
        for (int i = 0; i < word.Length;)
        {
            CharClass.CodePointAt(word, i, out int w);
            bool first = i == 0, last = i + w >= word.Length;
            var ch = word.Slice(i, w);
            i += w;
            int id;
            bool found;
            string? s = null;
            if ((!first && ContinuingSubwordPrefix is not null) || (last && EndOfWordSuffix is not null))
            {
                s = (!first ? ContinuingSubwordPrefix : "") + ch.ToString() + (last ? EndOfWordSuffix : "");
                found = _vocab.TryGetValue(s, out id);
            }
            else found = _vocabBySpan.TryGetValue(ch, out id);
            if (found)
            {
                if (pendingUnk >= 0) { symbols.Add(_unkId); pendingUnk = -1; }
                symbols.Add(id);
                continue;
            }
            if (ByteFallback)
            {
                var text = s ?? ch.ToString();
                var utf8 = Encoding.UTF8.GetBytes(text);
                var ids = new int[utf8.Length];
                bool all = true;
                for (int k = 0; k < utf8.Length && all; k++) all = _vocab.TryGetValue($"<0x{utf8[k]:X2}>", out ids[k]);
                if (all)
                {
                    // As Hugging Face: byte tokens go in without first flushing a pending unknown token.
                    symbols.AddRange(ids);
                    continue;
                }
            }
            if (UnkToken is not null)
            {
                if (_unkId < 0) throw new InvalidOperationException($"the unknown token '{UnkToken}' is not in the vocabulary");
                if (pendingUnk >= 0 && !FuseUnk) symbols.Add(_unkId);
                pendingUnk = 1;
            }
            // No unknown token: the char is dropped, as Hugging Face does.
        }
        if (pendingUnk >= 0) symbols.Add(_unkId);
        var arr = symbols.ToArray();
        if (arr.Length > ScanLimit) MergeWithQueue(arr, arr.Length, output);
        else MergeByScan(arr, output);
    }

    /// <summary>Short words: keep each adjacent pair's rank in an array, merge the lowest (leftmost on ties), update its neighbours.</summary>
    internal void MergeByScan(Span<int> ids, List<int> output)
    {
        int n = ids.Length;
        if (n >= 2)
        {
            Span<long> pairs = n <= 256 ? stackalloc long[n - 1] : new long[n - 1]; // rank << 32 | merged id; long.MaxValue: no merge
            for (int i = 0; i < n - 1; i++) pairs[i] = Lookup(ids[i], ids[i + 1]);
            int count = n;
            while (count > 1)
            {
                int best = 0;
                long bestValue = pairs[0];
                for (int i = 1; i < count - 1; i++)
                    if (pairs[i] < bestValue) { bestValue = pairs[i]; best = i; }
                if (bestValue == long.MaxValue) break;
                ids[best] = (int)(bestValue & 0xFFFFFFFF);
                // Drop symbol best+1 and pair best (its pair with the right neighbour becomes pair best).
                ids.Slice(best + 2, count - best - 2).CopyTo(ids.Slice(best + 1));
                pairs.Slice(best + 1, count - best - 2).CopyTo(pairs.Slice(best, count - best - 2));
                count--;
                if (best > 0) pairs[best - 1] = Lookup(ids[best - 1], ids[best]);
                if (best < count - 1) pairs[best] = Lookup(ids[best], ids[best + 1]);
            }
            n = count;
        }
        output.AddRange(ids[..n]);
    }

    // Ranks are < 2^31 and ids >= 0, so a found merge always sorts below long.MaxValue (no merge).
    private long Lookup(int a, int b) => _merges.Get(a, b);

    /// <summary>Long words: Hugging Face's algorithm, a priority queue of (rank, position) over a linked list of symbols.</summary>
    internal void MergeWithQueue(int[] ids, int n, List<int> output)
    {
        var next = new int[n];
        var prev = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; alive[i] = true; }
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        for (int i = 0; i < n - 1; i++) Push(i, ids[i], ids[i + 1]);
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (!alive[pos] || next[pos] < 0) continue;
            int right = next[pos];
            long v = Lookup(ids[pos], ids[right]);
            if (v == long.MaxValue || (int)(v & 0xFFFFFFFF) != top.NewId) continue; // stale
            ids[pos] = top.NewId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            if (prev[pos] >= 0) Push(prev[pos], ids[prev[pos]], ids[pos]);
            if (next[pos] >= 0) Push(pos, ids[pos], ids[next[pos]]);
        }
        for (int i = 0; i >= 0 && i < n; i = next[i]) output.Add(ids[i]);

        void Push(int pos, int a, int b)
        {
            long v = Lookup(a, b);
            if (v != long.MaxValue) queue.Enqueue((pos, (int)(v & 0xFFFFFFFF)), (v & ~0xFFFFFFFFL) | (uint)pos);
        }
    }
}
