using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Mamba4.Server;

namespace Mamba4.Tests.Server;

/// <summary>Who may call the server: the API key, the Host header (DNS rebinding), CORS, JSON-only POST bodies, and the start-up checks.</summary>
public class RequestGuardTests
{
    private const string Key = "s3cret-Key_0123";
    private static readonly string Completion = """{"prompt": [1, 2], "max_tokens": 2, "temperature": 0}""";

    private sealed record Reply(int Status, JsonNode? Body, Dictionary<string, string> Headers)
    {
        public string? Header(string name) => Headers.GetValueOrDefault(name.ToLowerInvariant());
        public string Message => Body?["error"]?["message"]?.GetValue<string>() ?? "";
    }

    private static async Task<Reply> SendAsync(ServerHarness server, HttpMethod method, string path, string? json = null, string? contentType = "application/json",
                                               string? authorization = null, string? host = null, string? origin = null, Action<HttpRequestMessage>? setup = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
            if (contentType is not null) request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
        if (host is not null) request.Headers.Host = host;
        if (origin is not null) request.Headers.Add("Origin", origin);
        setup?.Invoke(request);
        using var response = await server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var headers = response.Headers.Concat(response.Content.Headers).ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(", ", h.Value));
        return new Reply((int)response.StatusCode, ServerHarness.TryParse(text), headers);
    }

    private static Task<ServerHarness> StartAsync(ServerOptions extra) => ServerHarness.StartAsync(extra with { ModelDir = ServerHarness.HfMamba });

    [Fact]
    public async Task WithAKeyEveryCallButHealthAndThePageNeedsTheBearerToken()
    {
        await using var server = await StartAsync(new ServerOptions { ApiKey = Key });
        foreach (var (method, path, json) in new[]
                 {
                     (HttpMethod.Post, "/v1/completions", Completion), (HttpMethod.Post, "/tokenize", """{"content": "a"}"""),
                     (HttpMethod.Post, "/detokenize", """{"tokens": [1]}"""), (HttpMethod.Get, "/v1/models", null), (HttpMethod.Get, "/metrics", null),
                     (HttpMethod.Get, "/v1/users/u/recommendations", null), (HttpMethod.Get, "/no/such/path", null),
                 })
        {
            foreach (var authorization in new[] { null, "Bearer wrong", "Bearer " + Key + "x", "Bearer " + Key[..^1], Key, "Basic " + Key, "Bearer" })
            {
                var refused = await SendAsync(server, method, path, json, authorization: authorization);
                Assert.True(refused.Status == 401, $"{method} {path} with '{authorization}': {refused.Status} {refused.Message}");
                Assert.Equal("Bearer", refused.Header("WWW-Authenticate"));
                Assert.Equal("invalid_request_error", (string?)refused.Body!["error"]!["type"]);
                Assert.Equal("invalid_api_key", (string?)refused.Body["error"]!["code"]);
                Assert.Contains(authorization is null ? "missing API key" : "invalid API key", refused.Message);
            }
            var allowed = await SendAsync(server, method, path, json, authorization: "Bearer " + Key);
            Assert.True(allowed.Status is not 401, $"{method} {path} with the key: {allowed.Status} {allowed.Message}");
        }
        Assert.Equal(200, (await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, authorization: "bearer " + Key)).Status);   // the scheme is case-insensitive
        Assert.Equal(200, (await SendAsync(server, HttpMethod.Get, "/metrics", authorization: "Bearer " + Key)).Status);
        Assert.Equal(200, (await SendAsync(server, HttpMethod.Get, "/health")).Status);
        Assert.Equal(200, (await SendAsync(server, HttpMethod.Get, "/")).Status);
    }

    [Fact]
    public void TheKeyComparerAcceptsExactlyTheKeyWhateverTheLengthOfAGuess()
    {
        var digest = RequestGuard.Digest(Key);
        Assert.Equal(32, digest.Length);   // a SHA-256 digest: every guess is compared over the same 32 bytes
        Assert.True(RequestGuard.KeyMatches(digest, "Bearer " + Key));
        Assert.True(RequestGuard.KeyMatches(digest, "BEARER  " + Key + " "));
        foreach (var guess in new[] { "", "s", Key[..^1], Key + "4", Key.ToUpperInvariant(), new string('x', 10_000), Key + "\0" })
            Assert.False(RequestGuard.KeyMatches(digest, "Bearer " + guess), guess);
        Assert.False(RequestGuard.KeyMatches(digest, null));
        Assert.False(RequestGuard.KeyMatches(digest, Key));
        var unicode = RequestGuard.Digest("ключ");
        Assert.True(RequestGuard.KeyMatches(unicode, "Bearer ключ"));
        Assert.False(RequestGuard.KeyMatches(unicode, "Bearer ключь"));
    }

    [Fact]
    public async Task PostBodiesMustSayTheyAreJson()
    {
        await using var server = await StartAsync(new ServerOptions());
        foreach (var contentType in new[] { "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "application/json; charset=latin1", null })
        {
            var r = await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, contentType);
            Assert.True(r.Status == 415, $"{contentType}: {r.Status}");
            Assert.Equal("unsupported_media_type", (string?)r.Body!["error"]!["code"]);
            Assert.Contains(contentType is null ? "no Content-Type" : contentType.Contains("latin1") ? "UTF-8" : "application/json", r.Message);
        }
        foreach (var contentType in new[] { "application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8" })
            Assert.Equal(200, (await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, contentType)).Status);
        Assert.Equal(415, (await SendAsync(server, HttpMethod.Post, "/v1/users/u/events", """{"items": [1]}""", "text/plain")).Status);
        await using var keyed = await StartAsync(new ServerOptions { ApiKey = Key });
        Assert.Equal(401, (await SendAsync(keyed, HttpMethod.Post, "/v1/completions", Completion, "text/plain")).Status);   // the key is checked first
    }

    [Fact]
    public async Task ARequestForAnotherHostIsMisdirected()
    {
        await using var server = await StartAsync(new ServerOptions { AllowedHosts = ["lm.example.org", "[fd00::5]"] });
        foreach (var host in new[] { "evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example", "0.0.0.0", "0.0.0.0:8080", "lm.example.org.evil" })
        {
            var r = await SendAsync(server, HttpMethod.Get, "/health", host: host);
            Assert.True(r.Status == 421, $"{host}: {r.Status}");
            Assert.Equal("misdirected_request", (string?)r.Body!["error"]!["code"]);
            Assert.Contains($"host '{host.Split(':')[0]}' is not allowed", r.Message);
            Assert.Equal(421, (await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, host: host)).Status);
        }
        foreach (var host in new[] { "localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8080", "lm.example.org", "LM.Example.ORG:443", "[fd00::5]:80" })
            Assert.True((await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, host: host)).Status == 200, host);

        // The bound address is a name the server answers to; a wildcard bind is not, and '*' allows any host.
        await using var bound = await StartAsync(new ServerOptions { Host = "127.0.0.7" });
        Assert.Equal(200, (await SendAsync(bound, HttpMethod.Get, "/health", host: "127.0.0.7:8080")).Status);
        await using var wildcard = await StartAsync(new ServerOptions { Host = "0.0.0.0", InsecureNoAuth = true });
        Assert.Equal(421, (await SendAsync(wildcard, HttpMethod.Get, "/health", host: "0.0.0.0:8080")).Status);
        Assert.Equal(421, (await SendAsync(wildcard, HttpMethod.Get, "/health", host: "203.0.113.9")).Status);
        await using var any = await StartAsync(new ServerOptions { Host = "0.0.0.0", InsecureNoAuth = true, AllowedHosts = ["*"] });
        Assert.Equal(200, (await SendAsync(any, HttpMethod.Get, "/health", host: "203.0.113.9")).Status);
    }

    [Fact]
    public async Task CorsHeadersGoOnlyToTheListedOrigins()
    {
        await using (var closed = await StartAsync(new ServerOptions()))
        {
            var r = await SendAsync(closed, HttpMethod.Post, "/v1/completions", Completion, origin: "https://app.example");
            Assert.Equal(200, r.Status);
            Assert.DoesNotContain(r.Headers.Keys, k => k.StartsWith("access-control-", StringComparison.Ordinal));
            r = await SendAsync(closed, HttpMethod.Options, "/v1/completions", origin: "https://app.example", setup: m => m.Headers.Add("Access-Control-Request-Method", "POST"));
            Assert.DoesNotContain(r.Headers.Keys, k => k.StartsWith("access-control-", StringComparison.Ordinal));
        }

        await using var server = await StartAsync(new ServerOptions { ApiKey = Key, CorsOrigins = ["https://app.example", "http://localhost:3000"] });
        // The preflight carries no key (browsers never send one), so it is answered before the key is checked.
        var preflight = await SendAsync(server, HttpMethod.Options, "/v1/completions", origin: "https://app.example",
            setup: m => { m.Headers.Add("Access-Control-Request-Method", "POST"); m.Headers.Add("Access-Control-Request-Headers", "authorization, content-type"); });
        Assert.Equal(204, preflight.Status);
        Assert.Equal("https://app.example", preflight.Header("Access-Control-Allow-Origin"));
        Assert.Contains("POST", preflight.Header("Access-Control-Allow-Methods"));
        Assert.Contains("Authorization", preflight.Header("Access-Control-Allow-Headers"));
        Assert.Contains("Content-Type", preflight.Header("Access-Control-Allow-Headers"));
        var call = await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, authorization: "Bearer " + Key, origin: "http://localhost:3000");
        Assert.Equal(200, call.Status);
        Assert.Equal("http://localhost:3000", call.Header("Access-Control-Allow-Origin"));
        Assert.Equal("Origin", call.Header("Vary"));
        var refused = await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, origin: "https://app.example");
        Assert.Equal(401, refused.Status);
        Assert.Equal("https://app.example", refused.Header("Access-Control-Allow-Origin"));   // the page can read why

        foreach (var stranger in new[] { "https://evil.example", "https://app.example.evil.example", "http://app.example", "null" })
        {
            var r = await SendAsync(server, HttpMethod.Options, "/v1/completions", origin: stranger, setup: m => m.Headers.Add("Access-Control-Request-Method", "POST"));
            Assert.NotEqual(204, r.Status);
            Assert.Null(r.Header("Access-Control-Allow-Origin"));
            r = await SendAsync(server, HttpMethod.Post, "/v1/completions", Completion, authorization: "Bearer " + Key, origin: stranger);
            Assert.Null(r.Header("Access-Control-Allow-Origin"));
        }

        await using var any = await StartAsync(new ServerOptions { CorsOrigins = ["*"] });
        Assert.Equal("*", (await SendAsync(any, HttpMethod.Post, "/v1/completions", Completion, origin: "https://anyone.example")).Header("Access-Control-Allow-Origin"));
    }

    [Fact]
    public void ANonLoopbackBindNeedsAKeyOrTheInsecureFlag()
    {
        var x = new ServerOptions { ModelDir = "x" };
        foreach (var host in new[] { "0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "fd00::1" })
        {
            var e = Assert.Throws<ArgumentException>(() => (x with { Host = host }).Validate());
            Assert.Contains($"--host {host}", e.Message);
            Assert.Contains("--api-key", e.Message);
            Assert.Contains("--insecure-no-auth", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            (x with { Host = host, ApiKey = Key }).Validate();
            (x with { Host = host, InsecureNoAuth = true }).Validate();
        }
        foreach (var host in new[] { "127.0.0.1", "127.0.0.9", "::1", "localhost" }) (x with { Host = host }).Validate();

        Assert.Contains("1 to 1024 characters, got 0", Assert.Throws<ArgumentException>(() => (x with { ApiKey = "" }).Validate()).Message);
        Assert.Contains("got 1025", Assert.Throws<ArgumentException>(() => (x with { ApiKey = new string('k', 1025) }).Validate()).Message);
        foreach (var bad in new[] { "two words", "tab\tkey", "ключ", "line\nbreak" })
        {
            var e = Assert.Throws<ArgumentException>(() => (x with { ApiKey = bad }).Validate());
            Assert.Contains("printable ASCII", e.Message);
            Assert.DoesNotContain(bad, e.Message);   // a secret is not echoed
        }
        foreach (var bad in new[] { "http://lm.example", "lm.example:8080", "127.0.0.1:80", "[::1]:80", "lm.example/x", "", "a b" })
            Assert.Contains("--allowed-hosts", Assert.Throws<ArgumentException>(() => (x with { AllowedHosts = [bad] }).Validate()).Message);
        (x with { AllowedHosts = ["lm.example.org", "192.168.1.5", "::1", "[fd00::5]", "*"] }).Validate();
        foreach (var bad in new[] { "app.example", "https://app.example/", "https://app.example/path", "ftp://app.example", "*.example" })
            Assert.Contains("--cors", Assert.Throws<ArgumentException>(() => (x with { CorsOrigins = [bad] }).Validate()).Message);
        (x with { CorsOrigins = ["https://app.example", "http://localhost:3000", "*"] }).Validate();
    }
}
