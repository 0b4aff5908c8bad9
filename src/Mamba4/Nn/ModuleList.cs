namespace Mamba4.Nn;

/// <summary>Children named "0", "1", … as torch.nn.ModuleList.</summary>
public sealed class ModuleList<T> : Module where T : Module
{
    private readonly List<T> _items = new();

    public ModuleList(IEnumerable<T> items)
    {
        foreach (var m in items) _items.Add(Child(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), m));
    }

    public int Count => _items.Count;
    public T this[int i] => _items[i];
    public IReadOnlyList<T> Items => _items;
}
