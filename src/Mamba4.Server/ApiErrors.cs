using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server;

/// <summary>
/// A request the server refuses, with the HTTP status and a message naming the problem. Written as the
/// OpenAI error shape: {"error": {"message", "type", "param", "code"}}.
/// </summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string Code { get; } = code ?? DefaultCode(status);

    public static ApiException BadRequest(string message, string? param = null) => new(400, message, param);
    public static ApiException NotFound(string message) => new(404, message);
    public static ApiException TooLarge(string message, string? param = null) => new(413, message, param);
    public static ApiException TooMany(string message) => new(429, message);

    /// <summary>A stored id from the URL (a user, a series): 1 to 128 characters of letters, digits and - _ . : @, else 400.</summary>
    public static string CheckId(string? id, string what)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 128 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '@'))
            throw BadRequest($"{what} id must be 1 to 128 characters of letters, digits and - _ . : @, got '{id}'", "id");
        return id;
    }

    public static string DefaultCode(int status) => status switch
    {
        400 => "invalid_request",
        401 => "invalid_api_key",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        413 => "too_large",
        415 => "unsupported_media_type",
        421 => "misdirected_request",
        429 => "too_many_requests",
        503 => "unavailable",
        _ => status >= 500 ? "internal_error" : "error",
    };
}

public static class ApiErrors
{
    private static readonly JsonSerializerOptions ErrorJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Type(int status) => status switch
    {
        429 => "rate_limit_error",
        404 => "not_found_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static byte[] Json(int status, string message, string? param = null, string? code = null) =>
        JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
        {
            ["error"] = new Dictionary<string, object?>
            {
                ["message"] = message, ["type"] = Type(status), ["param"] = param, ["code"] = code ?? ApiException.DefaultCode(status),
            },
        }, ErrorJson);

    public static async Task WriteAsync(HttpContext ctx, int status, string message, string? param = null, string? code = null)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        if (status == 429) ctx.Response.Headers.RetryAfter = "1";
        await ctx.Response.Body.WriteAsync(Json(status, message, param, code));
    }
}
