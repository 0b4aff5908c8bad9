using System.Text;

namespace Mamba4.Data;

/// <summary>What is wrong with a CSV line: a quoted field never closed, or text after a closing quote.</summary>
/// <param name="Column">1-based column of the opening quote (unterminated) or of the unexpected character.</param>
/// <param name="Field">1-based field in which it happened.</param>
/// <param name="Found">The unexpected character (not used for an unterminated field).</param>
public sealed record CsvLineError(bool Unterminated, int Column, int Field, char Found);

/// <summary>One CSV record split into fields, shared by the recommendation and time-series readers.</summary>
public static class CsvLine
{
    /// <summary>
    /// Splits <paramref name="line"/> at <paramref name="sep"/> with RFC 4180 quoting ("a,b" holds the separator, "" is a
    /// quote inside quotes; spaces around a quoted field are dropped, an unquoted field is kept as it is). On a malformed
    /// line, <paramref name="error"/> says what and where, and the fields read so far are returned.
    /// </summary>
    public static List<string> Split(string line, char sep, out CsvLineError? error)
    {
        error = null;
        var fields = new List<string>();
        var sb = new StringBuilder();
        int i = 0;
        while (true)
        {
            sb.Clear();
            int start = i;
            while (i < line.Length && line[i] == ' ') i++;
            if (i < line.Length && line[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= line.Length)
                    {
                        error = new CsvLineError(true, start + 1, fields.Count + 1, '\0');
                        return fields;
                    }
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                while (i < line.Length && line[i] == ' ') i++;
                if (i < line.Length && line[i] != sep)
                {
                    error = new CsvLineError(false, i + 1, fields.Count + 1, line[i]);
                    return fields;
                }
            }
            else
            {
                i = start;
                while (i < line.Length && line[i] != sep) sb.Append(line[i++]);
            }
            fields.Add(sb.ToString());
            if (i >= line.Length) return fields;
            i++; // the separator
        }
    }
}
