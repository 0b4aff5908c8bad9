using System.Numerics;
using System.Runtime.InteropServices;

namespace Mamba4.Text;

/// <summary>
/// Word → ids, for one thread: open addressing over flat arrays (keys and ids in pools), so a hit costs one hash
/// of the word, about one probe and two copies — no objects per entry. Holds at most <see cref="Capacity"/> words;
/// once full, new words are not stored (as Hugging Face's cache).
/// </summary>
internal sealed class WordCache(int capacity)
{
    private struct Entry
    {
        public int Hash;      // 0: empty slot
        public int KeyStart, KeyLength, IdsStart, IdsLength;
    }

    private Entry[] _table = new Entry[64];
    private char[] _keys = new char[1024];
    private int[] _ids = new int[512];
    private int _keysUsed, _idsUsed;

    public int Capacity { get; set; } = capacity;
    public int Count { get; private set; }

    public static int Hash(ReadOnlySpan<char> s)
    {
        ulong h = (ulong)s.Length * 0x9E3779B97F4A7C15UL;
        var bytes = MemoryMarshal.AsBytes(s);
        int i = 0;
        for (; i + 8 <= bytes.Length; i += 8)
            h = BitOperations.RotateLeft((h ^ MemoryMarshal.Read<ulong>(bytes[i..])) * 0xBF58476D1CE4E5B9UL, 27);
        if (i < bytes.Length)
        {
            ulong tail = 0;
            for (int k = bytes.Length - 1; k >= i; k--) tail = (tail << 8) | bytes[k];
            h = BitOperations.RotateLeft((h ^ tail) * 0xBF58476D1CE4E5B9UL, 27);
        }
        h ^= h >> 31;
        h *= 0x94D049BB133111EBUL;
        h ^= h >> 29;
        int r = (int)h;
        return r == 0 ? 1 : r;
    }

    public bool TryGet(ReadOnlySpan<char> key, int hash, out ReadOnlySpan<int> ids)
    {
        var table = _table;
        int mask = table.Length - 1;
        for (int i = hash & mask; ; i = (i + 1) & mask)
        {
            ref var e = ref table[i];
            if (e.Hash == 0) break;
            if (e.Hash == hash && key.SequenceEqual(_keys.AsSpan(e.KeyStart, e.KeyLength)))
            {
                ids = _ids.AsSpan(e.IdsStart, e.IdsLength);
                return true;
            }
        }
        ids = default;
        return false;
    }

    /// <summary>Stores a word that <see cref="TryGet"/> did not find (unless the cache is full).</summary>
    public void Add(ReadOnlySpan<char> key, int hash, ReadOnlySpan<int> ids)
    {
        if (Count >= Capacity) return;
        if ((Count + 1) * 2 > _table.Length) Grow();
        EnsureRoom(ref _keys, _keysUsed + key.Length);
        EnsureRoom(ref _ids, _idsUsed + ids.Length);
        key.CopyTo(_keys.AsSpan(_keysUsed));
        ids.CopyTo(_ids.AsSpan(_idsUsed));
        Insert(_table, new Entry { Hash = hash, KeyStart = _keysUsed, KeyLength = key.Length, IdsStart = _idsUsed, IdsLength = ids.Length });
        _keysUsed += key.Length;
        _idsUsed += ids.Length;
        Count++;
    }

    public void Clear()
    {
        _table = new Entry[64];
        _keysUsed = _idsUsed = 0;
        Count = 0;
    }

    private static void Insert(Entry[] table, in Entry entry)
    {
        int mask = table.Length - 1;
        int i = entry.Hash & mask;
        while (table[i].Hash != 0) i = (i + 1) & mask;
        table[i] = entry;
    }

    private void Grow()
    {
        var bigger = new Entry[_table.Length * 2];
        foreach (var e in _table)
            if (e.Hash != 0) Insert(bigger, e);
        _table = bigger;
    }

    private static void EnsureRoom<T>(ref T[] pool, int needed)
    {
        if (needed > pool.Length) Array.Resize(ref pool, Math.Max(needed, pool.Length * 2));
    }
}

/// <summary>
/// (left id, right id) → (rank &lt;&lt; 32 | merged id): open addressing, key and value side by side in one flat
/// array (one cache line per probe), read-only once built.
/// </summary>
internal sealed class MergeTable
{
    private readonly long[] _slots; // [key, value] pairs; key -1: empty
    private readonly int _mask, _shift;

    public int Count { get; }

    public MergeTable(Dictionary<long, long> merges)
    {
        int size = 16;
        while (size < merges.Count * 2) size *= 2;
        _slots = new long[size * 2];
        for (int i = 0; i < size; i++) _slots[2 * i] = -1;
        _mask = size - 1;
        _shift = 64 - BitOperations.Log2((uint)size);
        foreach (var (key, value) in merges)
        {
            int i = Slot(key);
            while (_slots[2 * i] != -1) i = (i + 1) & _mask;
            _slots[2 * i] = key;
            _slots[2 * i + 1] = value;
        }
        Count = merges.Count;
    }

    private int Slot(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> _shift);

    /// <summary>The merge of the pair, or long.MaxValue when there is none.</summary>
    public long Get(int left, int right)
    {
        if ((left | right) < 0) return long.MaxValue;
        long key = ((long)left << 32) | (uint)right;
        var slots = _slots;
        for (int i = Slot(key); ; i = (i + 1) & _mask)
        {
            long k = slots[2 * i];
            if (k == key) return slots[2 * i + 1];
            if (k == -1) return long.MaxValue;
        }
    }
}
