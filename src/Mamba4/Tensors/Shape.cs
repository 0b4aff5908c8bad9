namespace Mamba4.Tensors;

/// <summary>An immutable list of dimension sizes, row-major.</summary>
public readonly struct Shape : IEquatable<Shape>
{
    private readonly int[] _dims;

    public Shape(params int[] dims)
    {
        foreach (var d in dims)
            if (d < 0) throw new ArgumentException($"shape [{string.Join(", ", dims)}] has a negative dimension");
        _dims = (int[])dims.Clone();
    }

    public static implicit operator Shape(int[] dims) => new(dims);

    public int Rank => _dims?.Length ?? 0;
    public int this[int axis] => _dims[axis < 0 ? axis + Rank : axis];
    public ReadOnlySpan<int> Dims => _dims;
    public int[] ToArray() => (int[])(_dims ?? []).Clone();

    public long NumElements
    {
        get
        {
            long n = 1;
            foreach (var d in _dims ?? []) n *= d;
            return n;
        }
    }

    /// <summary>Product of all dimensions but the last (the number of rows of a [..., d] tensor).</summary>
    public long Rows
    {
        get
        {
            long n = 1;
            for (int i = 0; i + 1 < Rank; i++) n *= _dims[i];   // also for a last dimension of 0: [2, 0] has 2 empty rows
            return n;
        }
    }

    public int Last => Rank == 0 ? 1 : this[-1];

    public Shape WithLast(int last)
    {
        var d = ToArray();
        d[^1] = last;
        return new Shape(d);
    }

    public bool Equals(Shape other) => Dims.SequenceEqual(other.Dims);
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in Dims) h.Add(d);
        return h.ToHashCode();
    }
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);
    public override string ToString() => $"[{string.Join(", ", _dims ?? [])}]";
}
