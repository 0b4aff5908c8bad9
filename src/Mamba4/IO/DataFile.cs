using System.IO.Compression;
using System.Text;

namespace Mamba4.IO;

/// <summary>
/// Opens the data files the commands read (interaction logs, time-series CSV, text): plain UTF-8 or gzip, told apart
/// by the first two bytes (1f 8b), not by the name; a file named <c>.gz</c> that is not gzip is an error. Gzip is
/// decompressed as it is read (streaming). A corrupt or truncated gzip stream is an <see cref="InvalidDataException"/>
/// naming the file and the line of the decompressed text it was reached in. The same bounds hold for plain and gzip
/// input, so a small gzip "bomb" cannot allocate more than a plain file could: a line is at most
/// <see cref="MaxLineChars"/> characters, a file at most <see cref="int.MaxValue"/> lines, and a whole-file read at most
/// <see cref="MaxTextChars"/> characters (or bytes). A pipe (not seekable) is read as plain text.
/// </summary>
public static class DataFile
{
    /// <summary>The longest line the line readers accept.</summary>
    public const int MaxLineChars = 1 << 24;
    /// <summary>The most characters (<see cref="ReadAllText"/>) or bytes (<see cref="ReadAllBytes"/>) read whole.</summary>
    public const int MaxTextChars = 1 << 29;

    // .NET's GZipStream returns end-of-file at a truncated stream unless this switch is on (read once per process, at
    // its first use; the tool's and the tests' runtimeconfig also set it so that no earlier use can fix it to off).
    static DataFile() => AppContext.SetSwitch("System.IO.Compression.UseStrictValidation", true);

    /// <summary>The decompressed bytes of the file.</summary>
    public static Stream OpenRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        if (!file.CanSeek) return file;
        Span<byte> magic = stackalloc byte[2];
        int n = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
        file.Position = 0;
        if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return new GzipText(file, path);
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            file.Dispose();
            throw new InvalidDataException($"{path}: named .gz but not gzip data (expected the gzip bytes 1f 8b at the start)");
        }
        return file;
    }

    /// <summary>The file as UTF-8 text (a byte-order mark selects its encoding), read line by line within the bounds.</summary>
    public static TextReader OpenText(string path) =>
        new BoundedReader(new StreamReader(OpenRead(path), Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16), path);

    /// <summary>The whole file as text, at most <see cref="MaxTextChars"/> characters.</summary>
    public static string ReadAllText(string path, int maxChars = MaxTextChars)
    {
        using var reader = (BoundedReader)OpenText(path);
        return reader.ReadToEnd(maxChars);
    }

    /// <summary>The whole (decompressed) file, byte for byte, at most <paramref name="maxBytes"/> bytes.</summary>
    public static byte[] ReadAllBytes(string path, int maxBytes = MaxTextChars)
    {
        using var stream = OpenRead(path);
        using var buffer = new MemoryStream();
        var chunk = new byte[1 << 16];
        for (int n; (n = stream.Read(chunk)) > 0;)
        {
            if (buffer.Length + n > maxBytes) throw TooLong(path, maxBytes, "bytes");
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    private static InvalidDataException TooLong(string path, int max, string unit) =>
        new($"{path}: more than {max:N0} {unit} (decompressed); a file read whole must be smaller");

    /// <summary>Gzip decompression that counts the lines it has delivered, to name the line where the data breaks.</summary>
    private sealed class GzipText(Stream file, string path) : Stream
    {
        private readonly GZipStream _gzip = new(file, CompressionMode.Decompress);
        private long _lines;

        public override int Read(Span<byte> buffer)
        {
            int n;
            try { n = _gzip.Read(buffer); }
            catch (InvalidDataException)
            {
                throw new InvalidDataException($"{path}:{_lines + 1}: corrupt or truncated gzip data (decompression fails in line {_lines + 1} of the text)");
            }
            _lines += buffer[..n].Count((byte)'\n');
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) _gzip.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Line reading as <see cref="StreamReader.ReadLine"/> (\n, \r\n or \r end a line), with the line bounds.</summary>
    private sealed class BoundedReader(TextReader inner, string path) : TextReader
    {
        private readonly char[] _buffer = new char[1 << 16];
        private readonly StringBuilder _line = new();
        private int _start, _end;
        private int _lines;

        private bool Fill()
        {
            _start = 0;
            _end = inner.Read(_buffer, 0, _buffer.Length);
            return _end > 0;
        }

        public override int Peek() => _start < _end || Fill() ? _buffer[_start] : -1;
        public override int Read() => _start < _end || Fill() ? _buffer[_start++] : -1;

        public override string? ReadLine()
        {
            _line.Clear();
            while (true)
            {
                if (_start == _end && !Fill())
                {
                    if (_line.Length == 0) return null;
                    return Counted(_line.ToString());
                }
                var span = _buffer.AsSpan(_start, _end - _start);
                int i = span.IndexOfAny('\r', '\n');
                if (_line.Length + (i < 0 ? span.Length : i) > MaxLineChars)
                    throw new InvalidDataException($"{path}:{_lines + 1L}: a line longer than {MaxLineChars:N0} characters (expected one record per line)");
                if (i < 0)
                {
                    _line.Append(span);
                    _start = _end;
                    continue;
                }
                string line = _line.Length == 0 ? new string(span[..i]) : _line.Append(span[..i]).ToString();
                _start += i + 1;
                if (span[i] == '\r' && (_start < _end || Fill()) && _buffer[_start] == '\n') _start++;
                return Counted(line);
            }
        }

        private string Counted(string line)
        {
            if (_lines == int.MaxValue) throw new InvalidDataException($"{path}: more than {int.MaxValue:N0} lines");
            _lines++;
            return line;
        }

        public override string ReadToEnd() => ReadToEnd(MaxTextChars);

        public string ReadToEnd(int maxChars)
        {
            var text = new StringBuilder();
            while (_start < _end || Fill())
            {
                if (text.Length + (_end - _start) > maxChars) throw TooLong(path, maxChars, "characters");
                text.Append(_buffer, _start, _end - _start);
                _start = _end;
            }
            return text.ToString();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
