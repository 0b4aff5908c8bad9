using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server;

/// <summary>
/// Strict JSON request bodies: at most <c>maxBytes</c> (413 beyond), valid JSON (400 naming the line and
/// byte), an object whose every field is known (400 naming the unknown field and the allowed ones), each
/// value of its field's type (400 naming the field and the expected type).
/// </summary>
public static class JsonBody
{
    public static readonly JsonSerializerOptions Options = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
        MaxDepth = 16,
    };

    public static readonly JsonSerializerOptions Output = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Reads the whole body, refusing more than <paramref name="maxBytes"/>.</summary>
    public static async Task<byte[]> ReadBytesAsync(HttpContext ctx, long maxBytes)
    {
        if (ctx.Request.ContentLength is long declared && declared > maxBytes)
            throw ApiException.TooLarge($"request body is {declared} bytes; the limit is {maxBytes} bytes (--max-request-bytes)");
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        while (true)
        {
            int n;
            try { n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted); }
            catch (BadHttpRequestException e) when (e.StatusCode == 413)
            {
                throw ApiException.TooLarge($"request body exceeds the limit of {maxBytes} bytes (--max-request-bytes)");
            }
            if (n == 0) break;
            if (buffer.Length + n > maxBytes)
                throw ApiException.TooLarge($"request body exceeds the limit of {maxBytes} bytes (--max-request-bytes)");
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    public static async Task<T> ReadAsync<T>(HttpContext ctx, long maxBytes) where T : class
    {
        // RequestGuard has refused a POST that does not say Content-Type: application/json (415).
        var bytes = await ReadBytesAsync(ctx, maxBytes);
        return Parse<T>(bytes);
    }

    public static T Parse<T>(ReadOnlySpan<byte> bytes) where T : class
    {
        if (bytes.Trim(" \t\r\n"u8).IsEmpty) throw ApiException.BadRequest("request body is empty: expected a JSON object");
        RefuseInvalidText(bytes);
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, Options) ?? throw ApiException.BadRequest("request body is null: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw ApiException.BadRequest(Describe<T>(e), FieldOf(e.Path));
        }
    }

    /// <summary>
    /// A body must be UTF-8 text: System.Text.Json reads invalid bytes inside a string, and invalid text spelled
    /// as escapes (a lone UTF-16 surrogate, "\ud800" without its pair), and fails only when the string is taken:
    /// as a type error, or an InvalidOperationException (a 500). Refused here: a 400 naming the byte, and the
    /// top-level field for a surrogate. Malformed JSON is left to the deserializer, which names line and byte.
    /// </summary>
    private static void RefuseInvalidText(ReadOnlySpan<byte> bytes)
    {
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw ApiException.BadRequest($"request body is not UTF-8 text: an invalid byte sequence at byte {FirstInvalidByte(bytes) + 1}");
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = Options.MaxDepth });
        string? field = null;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is not (JsonTokenType.PropertyName or JsonTokenType.String)) continue;
                bool topName = reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1;
                if (!reader.ValueIsEscaped && !topName) continue;
                string text;
                try { text = reader.GetString()!; }
                catch (InvalidOperationException)
                {
                    var what = topName ? "a field name" : $"field '{field}'";
                    throw ApiException.BadRequest($"{what} holds a lone UTF-16 surrogate (an escape in \\ud800-\\udfff without its pair, at byte {reader.TokenStartIndex + 1}): text must be valid Unicode", topName ? null : field);
                }
                if (topName) field = text;
            }
        }
        catch (JsonException) { }
    }

    private static int FirstInvalidByte(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length && System.Text.Rune.DecodeFromUtf8(bytes[i..], out _, out int length) == System.Buffers.OperationStatus.Done) i += length;
        return i;
    }

    /// <summary>The top-level field named by a JSON path like <c>$.max_tokens</c> or <c>$.prompt[3]</c>.</summary>
    private static string? FieldOf(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$" || !path.StartsWith("$.", StringComparison.Ordinal)) return null;
        var rest = path[2..];
        int end = rest.IndexOfAny(['.', '[']);
        return end < 0 ? rest : rest[..end];
    }

    private static string Describe<T>(JsonException e)
    {
        string where = e.LineNumber is long line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
        var field = FieldOf(e.Path);
        var fields = typeof(T).GetProperties()
            .Select(p => (Prop: p, Name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name))
            .Where(p => p.Name is not null).ToList();
        if (e.GetType() != typeof(JsonException) || e.InnerException is JsonException)   // the reader's own (syntax) error
            return $"malformed JSON{where}: {Clean((e.InnerException ?? e).Message)}";
        if (e.Message.Contains("could not be mapped", StringComparison.Ordinal))
            return $"unknown field '{field ?? e.Path}'{where}; allowed fields: {string.Join(", ", fields.Select(f => f.Name))}";
        if (field is not null && fields.FirstOrDefault(f => f.Name == field) is { Prop: not null } known)
            return $"field '{field}'{where}: expected {Expected(known.Prop.PropertyType)}";
        if (e.Message.Contains("could not be converted", StringComparison.Ordinal) && (e.Path is null || e.Path == "$"))
            return $"expected a JSON object{where}";
        return $"malformed JSON{where}: {Clean(e.InnerException?.Message ?? e.Message)}";
    }

    /// <summary>The message without System.Text.Json's trailing "Path: … | LineNumber: …" (we say where ourselves).</summary>
    private static string Clean(string message)
    {
        foreach (var marker in new[] { " Path:", " LineNumber:" })
        {
            int i = message.IndexOf(marker, StringComparison.Ordinal);
            if (i > 0) message = message[..i];
        }
        return message;
    }

    private static string Expected(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(int) || t == typeof(long)) return $"an integer in [{(t == typeof(int) ? int.MinValue : long.MinValue)}, {(t == typeof(int) ? int.MaxValue : long.MaxValue)}]";
        if (t == typeof(double) || t == typeof(float)) return "a number";
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(string)) return "a string";
        if (t == typeof(long[]) || t == typeof(int[])) return "an array of integers";
        if (t == typeof(string[])) return "an array of strings";
        if (t == typeof(JsonElement)) return "a JSON value";
        return "a value of another type";
    }
}
