namespace Mamba4.IO;

/// <summary>
/// A safetensors file that breaks the format: the message names the file, the byte offset in the
/// file where the problem is (when there is one) and what was expected there.
/// </summary>
public sealed class SafetensorsFormatException : FormatException
{
    public SafetensorsFormatException(string path, long? offset, string detail, Exception? inner = null)
        : base(Compose(path, offset, detail), inner)
    {
        Path = path;
        Offset = offset;
        Detail = detail;
    }

    /// <summary>The file, as it was passed to <see cref="SafetensorsFile.Open"/>.</summary>
    public string Path { get; }

    /// <summary>Byte offset from the start of the file, or null when the problem has no one place.</summary>
    public long? Offset { get; }

    /// <summary>What was wrong, without the file name and offset.</summary>
    public string Detail { get; }

    private static string Compose(string path, long? offset, string detail) =>
        offset is { } o ? $"invalid safetensors file '{path}' at byte {o}: {detail}" : $"invalid safetensors file '{path}': {detail}";
}
