namespace Mamba4.Text;

/// <summary>A tokenizer file that cannot be read: the message names the file, where (line or JSON path) and what was expected.</summary>
public sealed class TokenizerFormatException : FormatException
{
    /// <summary>The file (or source name) that was being read.</summary>
    public string FilePath { get; }

    public TokenizerFormatException(string filePath, string message, Exception? inner = null)
        : base($"{filePath}: {message}", inner)
    {
        FilePath = filePath;
    }
}
