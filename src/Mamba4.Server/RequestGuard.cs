using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Mamba4.Server;

/// <summary>
/// Who may call the server and how, checked before any endpoint runs, in this order:
/// <list type="number">
/// <item>Host: the Host header must name the bound address, localhost, 127.0.0.1, [::1] or an --allowed-hosts entry
/// (port aside), else 421. A web page cannot then reach a local server by DNS rebinding (its own name resolving to
/// 127.0.0.1). A wildcard bind (0.0.0.0, ::) is not a name: list the public names, or --allowed-hosts '*' for any.</item>
/// <item>CORS, only with --cors: a listed origin's preflight (OPTIONS) is answered and its requests carry
/// Access-Control-Allow-Origin; no other origin gets any CORS header, and '*' only when given.</item>
/// <item>API key, only with --api-key: every request but GET /health and GET / needs <c>Authorization: Bearer KEY</c>,
/// else 401 (compared in constant time, as SHA-256 digests so that the length does not show either).</item>
/// <item>A POST body must be <c>Content-Type: application/json</c>, else 415: a page's form or text/plain post (sent
/// cross-site without asking) cannot write events.</item>
/// </list>
/// </summary>
public sealed class RequestGuard
{
    private readonly HashSet<string> _hosts;
    private readonly bool _anyHost;
    private readonly HashSet<string> _origins;
    private readonly bool _anyOrigin;
    private readonly byte[]? _keyDigest;

    private readonly PathString _prefix;

    /// <param name="prefix">Where the endpoints are mapped (MapMamba4's pathPrefix): GET prefix/ and prefix/health stay open.</param>
    public RequestGuard(ServerOptions options, PathString prefix = default)
    {
        _prefix = prefix;
        _hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "::1" };
        if (!IsWildcard(options.Host)) _hosts.Add(HostName(options.Host));
        foreach (var h in options.AllowedHosts) _hosts.Add(HostName(h));
        _anyHost = options.AllowedHosts.Contains("*");
        _origins = new HashSet<string>(options.CorsOrigins, StringComparer.OrdinalIgnoreCase);
        _anyOrigin = _origins.Contains("*");
        _keyDigest = options.ApiKey is { } key ? Digest(key) : null;
    }

    /// <summary>A host as compared: without the brackets of an IPv6 literal.</summary>
    public static string HostName(string host) => host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;

    private static bool IsWildcard(string host) => IPAddress.TryParse(host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any));

    public static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>Whether <paramref name="authorization"/> is "Bearer KEY" with the key of <paramref name="keyDigest"/>: equal digests, compared in constant time.</summary>
    public static bool KeyMatches(byte[] keyDigest, string? authorization)
    {
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Digest(authorization[scheme.Length..].Trim()), keyDigest);
    }

    /// <summary>The middleware (for <c>app.Use</c>).</summary>
    public async Task InvokeAsync(HttpContext ctx, RequestDelegate next)
    {
        var request = ctx.Request;
        var response = ctx.Response;
        if (!_anyHost && !_hosts.Contains(HostName(request.Host.Host)))
        {
            await ApiErrors.WriteAsync(ctx, 421, request.Host.HasValue
                ? $"misdirected request: host '{request.Host.Host}' is not allowed (a server that should answer to it lists it in --allowed-hosts)"
                : "misdirected request: the request names no Host");
            return;
        }
        if (_origins.Count > 0)
        {
            if (!_anyOrigin) response.Headers.Vary = HeaderNames.Origin;
            if (request.Headers.Origin is [{ } origin] && (_anyOrigin || _origins.Contains(origin)))
            {
                response.Headers.AccessControlAllowOrigin = _anyOrigin ? "*" : origin;
                if (HttpMethods.IsOptions(request.Method) && request.Headers.ContainsKey(HeaderNames.AccessControlRequestMethod))
                {
                    response.Headers.AccessControlAllowMethods = "GET, POST, DELETE";
                    response.Headers.AccessControlAllowHeaders = "Authorization, Content-Type";
                    response.Headers.AccessControlMaxAge = "600";
                    response.StatusCode = StatusCodes.Status204NoContent;
                    return;
                }
            }
        }
        if (_keyDigest is not null && !IsOpen(request) && !KeyMatches(_keyDigest, request.Headers.Authorization))
        {
            response.Headers.WWWAuthenticate = "Bearer";
            await ApiErrors.WriteAsync(ctx, 401, request.Headers.Authorization.Count == 0
                ? "missing API key: send the header 'Authorization: Bearer KEY' (the server was started with --api-key)"
                : "invalid API key: the Authorization header must be 'Bearer KEY' with the server's --api-key");
            return;
        }
        if (HttpMethods.IsPost(request.Method) && JsonProblem(request.ContentType) is { } problem)
        {
            await ApiErrors.WriteAsync(ctx, 415, problem);
            return;
        }
        await next(ctx);
    }

    /// <summary>GET (or HEAD) of the playground page and /health, under the prefix.</summary>
    private bool IsOpen(HttpRequest request)
    {
        if (!(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))) return false;
        var path = request.Path;
        if (_prefix.HasValue && !path.StartsWithSegments(_prefix, out path)) return false;
        return !path.HasValue || path.Equals("/", StringComparison.Ordinal) || path.Equals("/health", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Null for application/json (in UTF-8, if a charset is named), else why not.</summary>
    private static string? JsonProblem(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType)) return "the request has no Content-Type: send 'Content-Type: application/json' with a JSON body";
        if (!MediaTypeHeaderValue.TryParse(contentType, out var type) || !type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
            return $"Content-Type must be application/json, got '{contentType}' (curl -d sends a form: add -H 'Content-Type: application/json')";
        if (type.Charset.HasValue && !(type.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || type.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)))
            return $"the body must be UTF-8 JSON, got charset '{type.Charset}'";
        return null;
    }
}
