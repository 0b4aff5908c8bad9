namespace Mamba4.Tensors;

public enum DeviceKind
{
    Cpu,
    Cuda,
}

/// <summary>Where a tensor's storage lives. Ops dispatch to <see cref="Backends.IBackend"/> by device.</summary>
public readonly record struct Device(DeviceKind Kind, int Index)
{
    public static readonly Device Cpu = new(DeviceKind.Cpu, 0);

    public static Device Cuda(int index = 0) => new(DeviceKind.Cuda, index);

    public bool IsCpu => Kind == DeviceKind.Cpu;

    /// <summary>Parses "cpu", "cuda", "cuda:1".</summary>
    public static Device Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda") return Cuda(0);
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0) return Cuda(i);
        throw new FormatException($"device '{text}' is not valid (expected 'cpu', 'cuda' or 'cuda:N')");
    }

    public override string ToString() => Kind == DeviceKind.Cpu ? "cpu" : $"cuda:{Index}";
}
