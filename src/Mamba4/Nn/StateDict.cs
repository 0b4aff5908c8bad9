using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>The outcome of loading named tensors into a module.</summary>
public sealed record LoadReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Mismatched)
{
    public bool IsClean => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <summary>How many names of each kind the message lists: a config far from its weights must not make a megabyte line.</summary>
    public const int NamesListed = 10;

    public override string ToString()
    {
        var parts = new List<string>();
        if (Missing.Count > 0) parts.Add($"missing: {Names(Missing, ", ")}");
        if (Unexpected.Count > 0) parts.Add($"unexpected: {Names(Unexpected, ", ")}");
        if (Mismatched.Count > 0) parts.Add($"wrong shape: {Names(Mismatched, "; ")}");
        return parts.Count == 0 ? "all tensors loaded" : string.Join(" | ", parts);
    }

    private static string Names(IReadOnlyList<string> names, string separator) => names.Count <= NamesListed
        ? string.Join(separator, names)
        : $"{string.Join(separator, names.Take(NamesListed))}{separator}… and {names.Count - NamesListed} more";
}

/// <summary>Loads and saves a module's parameters by their PyTorch names.</summary>
public static class StateDict
{
    /// <summary>
    /// Copies tensors into the module's parameters by name (converting F16/BF16/F64 to the parameter's dtype).
    /// <paramref name="optional"/> names stored tensors that may be present without a parameter to load into (such as a tied head's copy): they are not unexpected.
    /// With <paramref name="strict"/>, any missing, unexpected or mis-shaped tensor throws, naming them all.
    /// </summary>
    public static LoadReport Load(Module module, IReadOnlyDictionary<string, (Shape Shape, Func<Tensor> Read)> source, string sourceName,
        bool strict = true, IReadOnlyDictionary<string, string>? optional = null)
    {
        var missing = new List<string>();
        var mismatched = new List<string>();
        var used = new HashSet<string>();
        foreach (var (name, p) in module.NamedParameters())
        {
            if (!source.TryGetValue(name, out var entry))
            {
                missing.Add(name);
                continue;
            }
            used.Add(name);
            if (entry.Shape != p.Shape)
            {
                mismatched.Add($"{name}: expected {p.Shape}, found {entry.Shape}");
                continue;
            }
            using var t = entry.Read();
            p.CopyFrom(t);
        }
        var unexpected = source.Keys.Where(k => !used.Contains(k) && !(optional?.ContainsKey(k) ?? false)).ToList();
        var report = new LoadReport(missing, unexpected, mismatched);
        if (strict && !report.IsClean)
            throw new InvalidDataException($"{sourceName}: the weights do not match the model ({report})");
        return report;
    }

    public static LoadReport Load(Module module, IReadOnlyDictionary<string, Tensor> tensors, string sourceName = "state dict", bool strict = true) =>
        Load(module, tensors.ToDictionary(kv => kv.Key, kv => (kv.Value.Shape, (Func<Tensor>)(() => kv.Value.Detach()))), sourceName, strict);
}
