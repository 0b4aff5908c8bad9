using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>
/// Every dtype name the safetensors format defines, with its size in bits, and the Mamba4
/// <see cref="DType"/> that holds it (null for the ones Mamba4 has no type for: a file that contains
/// them still opens, and its other tensors can be read).
/// </summary>
internal static class SafetensorsDTypes
{
    private static readonly Dictionary<string, (int Bits, DType? DType)> Known = Build();

    private static Dictionary<string, (int, DType?)> Build()
    {
        var d = new Dictionary<string, (int, DType?)>(StringComparer.Ordinal)
        {
            ["BOOL"] = (8, null), ["F8_E5M2"] = (8, null), ["F8_E4M3"] = (8, null),
            ["F8_E8M0"] = (8, null), ["I16"] = (16, null), ["U16"] = (16, null), ["U32"] = (32, null),
            ["U64"] = (64, null), ["C64"] = (64, null), ["F4"] = (4, null), ["F6_E2M3"] = (6, null), ["F6_E3M2"] = (6, null),
        };
        foreach (var t in Enum.GetValues<DType>()) d[t.SafetensorsName()] = (8 * t.ElementSize(), t);
        return d;
    }

    public static bool TryGet(string name, out int bits, out DType? dtype)
    {
        if (Known.TryGetValue(name, out var e)) { (bits, dtype) = e; return true; }
        (bits, dtype) = (0, null);
        return false;
    }

    public static string SupportedList { get; } = string.Join(", ", Enum.GetValues<DType>().Select(t => t.SafetensorsName()));
}
