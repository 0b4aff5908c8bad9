using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Mamba4.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Logging;

namespace Mamba4.Tests.Server;

/// <summary>Whatever the body, the answer is a 2xx or a 4xx JSON error with a message — never a 500.</summary>
public sealed class RequestBodyTests : IAsyncLifetime
{
    private ServerHarness _server = null!;
    private string _modelDir = null!;
    private string _tmp = null!;

    public async ValueTask InitializeAsync()
    {
        _modelDir = CompletionServerTests.CharModelDir();
        _tmp = Directory.CreateTempSubdirectory("mamba4-bodies-").FullName;
        _server = await ServerHarness.StartAsync(new ServerOptions
        {
            ModelDir = _modelDir, RecDir = ServerHarness.Rec1, StateDb = Path.Combine(_tmp, "users.sqlite"),
            MaxTokens = 4, MaxPromptTokens = 64, MaxHistory = 64, MaxRequestBytes = 8192,
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_modelDir, true);
        Directory.Delete(_tmp, true);
    }

    private async Task<(int Status, string Text, string? MediaType)> PostAsync(string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await _server.Client.PostAsync(path, content, TestContext.Current.CancellationToken);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("/v1/completions", """{"prompt": "a\ud800b", "max_tokens": 2}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt": "ab\udc00", "max_tokens": 2}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt": "ab", "stop": ["x", "\ud800"], "max_tokens": 2}""", "stop")]
    [InlineData("/v1/completions", """{"prompt": "ab", "stop": "\udfff\ud800"}""", "stop")]
    [InlineData("/v1/completions", """{"prompt": "ab", "user": "\ud83d"}""", "user")]
    [InlineData("/v1/completions", """{"prompt": {"\ud800": 1}}""", "prompt")]
    [InlineData("/tokenize", """{"content": "hello \ud800 world"}""", "content")]
    public async Task ALoneSurrogateIsA400NamingTheField(string path, string json, string field)
    {
        var (status, text, _) = await PostAsync(path, Encoding.UTF8.GetBytes(json));
        Assert.True(status == 400, $"{status}: {text}");
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal(field, (string?)error["param"]);
        Assert.StartsWith($"field '{field}' holds a lone UTF-16 surrogate", (string?)error["message"]);
        // A top-level field name is named as such.
        (status, text, _) = await PostAsync(path, Encoding.UTF8.GetBytes("""{"\ud800x": 1}"""));
        Assert.Equal(400, status);
        Assert.StartsWith("a field name holds a lone UTF-16 surrogate", (string?)JsonNode.Parse(text)!["error"]!["message"]);
    }

    [Theory]
    [InlineData("/v1/completions", "{\"prompt\": [{\"a\": \"x\xff\"}]}", 21)]   // once a 500: the error message quoted the element's raw text
    [InlineData("/tokenize", "{\"content\": \"\xc3\"}", 14)]
    [InlineData("/v1/recommend", "{\"history\": [1], \"\xe2\x82\": 2}", 19)]
    public async Task ABodyThatIsNotUtf8IsA400NamingTheByte(string path, string latin1, int at)
    {
        var (status, text, _) = await PostAsync(path, Encoding.Latin1.GetBytes(latin1));
        Assert.True(status == 400, $"{status}: {text}");
        Assert.Equal($"request body is not UTF-8 text: an invalid byte sequence at byte {at}", (string?)JsonNode.Parse(text)!["error"]!["message"]);
    }

    [Fact]
    public async Task ASurrogatePairIsOrdinaryText()
    {
        // 😀 spelled as its escaped pair: valid Unicode, refused by the character tokenizer for what it is.
        var (status, text, _) = await PostAsync("/tokenize", Encoding.UTF8.GetBytes("""{"content": "a\ud83d\ude00"}"""));
        Assert.Equal(400, status);
        Assert.DoesNotContain("surrogate", text);
        Assert.Contains("U+1F600", text);
    }

    [Fact]
    public async Task AnInternalErrorIsA500WithoutItsTextWhichGoesToTheLog()
    {
        var log = new CapturingLogger();
        await using var app = MambaServer.Build(new ServerOptions { ModelDir = ServerHarness.HfMamba, Log = false }, b =>
        {
            b.WebHost.UseTestServer();
            b.Logging.ClearProviders();
            b.Logging.AddProvider(log);
        });
        app.MapGet("/boom", _ => throw new InvalidOperationException("secret detail at /srv/models/x"));
        await app.StartAsync(TestContext.Current.CancellationToken);
        using var client = app.GetTestClient();
        using var response = await client.GetAsync("/boom", TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(500, (int)response.StatusCode);
        var message = (string)JsonNode.Parse(text)!["error"]!["message"]!;
        Assert.DoesNotContain("secret", text);
        Assert.DoesNotContain("InvalidOperation", text);
        var id = System.Text.RegularExpressions.Regex.Match(message, @"request (\S+)\)").Groups[1].Value;
        Assert.NotEmpty(id);
        // --quiet (Log = false) still logs the error, with the request's id and the exception.
        Assert.Contains(log.Lines, l => l.Contains(id) && l.Contains("secret detail at /srv/models/x"));
        await app.StopAsync(TestContext.Current.CancellationToken);
    }

    private sealed class CapturingLogger : ILoggerProvider, ILogger
    {
        public System.Collections.Concurrent.ConcurrentQueue<string> Lines { get; } = new();
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error) Lines.Enqueue(formatter(state, exception) + " " + exception?.Message);
        }
        public void Dispose() { }
    }

    // ---- random bodies ----

    /// <summary>A JSON string literal of arbitrary UTF-16 (lone surrogates included), every char outside printable ASCII escaped.</summary>
    private static string Literal(string s)
    {
        var b = new StringBuilder("\"");
        foreach (char c in s)
            b.Append(c is >= ' ' and <= '~' and not '"' and not '\\' ? c.ToString() : $"\\u{(int)c:x4}");
        return b.Append('"').ToString();
    }

    private static readonly Gen<string> Text = Gen.Frequency(
        (3, Gen.Char["abcdefghijklmnopqrstuvwxyz .,!?"].Array[0, 12].Select(c => new string(c))),
        (2, Gen.Char.Array[0, 6].Select(c => new string(c))),
        (2, Gen.OneOf(Gen.Const("\ud800"), Gen.Const("x\udc00"), Gen.Const("\ud83d\ude00"), Gen.Const("\u0000"), Gen.Const("<b>"), Gen.Const(new string('a', 300)))));

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (3, Gen.Int[-3, 120].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Long.Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : "1e999")),
        (1, Gen.OneOf(Gen.Const("0.5"), Gen.Const("-0"), Gen.Const("1e400"), Gen.Const("2147483648"), Gen.Const("1.0"), Gen.Const("9223372036854775808"))),
        (1, Gen.OneOf(Gen.Const("null"), Gen.Const("true"), Gen.Const("false"))),
        (3, Text.Select(Literal)));

    private static readonly Gen<string> Any = Gen.Recursive<string>((depth, self) => depth >= 3 ? Scalar : Gen.Frequency(
        (4, Scalar),
        (2, self.Array[0, 6].Select(items => "[" + string.Join(",", items) + "]")),
        (1, Gen.Select(Text, self).Array[0, 3].Select(Object))));

    private static string Object((string Key, string Value)[] members) => "{" + string.Join(",", members.Select(m => Literal(m.Key) + ":" + m.Value)) + "}";

    private static Gen<string> Ints(int lo, int hi) => Gen.Int[lo, hi].Array[0, 8].Select(a => "[" + string.Join(",", a) + "]");
    private static Gen<string> Number(params string[] values) => Gen.OneOf(values.Select(Gen.Const).ToArray());
    private static readonly Gen<string> Bool = Number("true", "false");
    private static readonly Gen<string> Texts = Gen.Frequency((2, Text.Select(Literal)), (1, Text.Select(Literal).Array[0, 5].Select(a => "[" + string.Join(",", a) + "]")));

    /// <summary>Each endpoint's fields with plausible values, so that bodies get past the first check to the later ones.</summary>
    private static readonly Dictionary<string, (string Field, Gen<string> Plausible)[]> Fields = new()
    {
        ["/v1/completions"] =
        [
            ("prompt", Gen.Frequency((2, Text.Select(Literal)), (1, Ints(-1, 40)))), ("max_tokens", Gen.Int[0, 5].Select(i => i.ToString(CultureInfo.InvariantCulture))),
            ("temperature", Number("0", "0.7", "2")), ("top_p", Number("0.9", "1")), ("top_k", Number("0", "3")), ("repetition_penalty", Number("1", "1.3")),
            ("seed", Number("1", "42")), ("stop", Texts), ("stop_token_ids", Ints(-1, 40)), ("stream", Bool), ("n", Number("1")), ("user", Text.Select(Literal)),
            ("model", Text.Select(Literal)),
        ],
        ["/tokenize"] = [("content", Text.Select(Literal))],
        ["/v1/recommend"] = [("history", Ints(-1, 60)), ("k", Gen.Int[0, 12].Select(i => i.ToString(CultureInfo.InvariantCulture))), ("exclude", Ints(-1, 60)), ("exclude_history", Bool)],
    };

    /// <summary>
    /// Mostly objects of the endpoint's fields, each left out, plausible or of any JSON value; some with an unknown
    /// field; some other JSON; some bodies with a byte changed or cut short.
    /// </summary>
    private static Gen<byte[]> Body(string path)
    {
        var members = Fields[path].Select(f => Gen.Int[0, 9].SelectMany(roll => roll switch
        {
            < 3 => Gen.Const(((string, string)?)null),
            < 8 => f.Plausible.Select(v => ((string, string)?)(f.Field, v)),
            _ => Any.Select(v => ((string, string)?)(f.Field, v)),
        })).ToArray();
        var fields = Gen.Select(members.Aggregate(Gen.Const(Array.Empty<(string, string)>()), (all, m) => Gen.Select(all, m, (a, x) => x is { } v ? [.. a, v] : a)),
            Gen.Int[0, 9], Gen.Select(Text, Any), (known, roll, unknown) => Object(roll == 0 ? [.. known, unknown] : known));
        var bytes = Gen.Frequency((8, fields), (1, Any)).Select(Encoding.UTF8.GetBytes);
        var damaged = Gen.Select(bytes, Gen.Int[0, 1000], Gen.Byte, Gen.Bool).Select(t =>
        {
            var (b, at, value, cut) = t;
            if (b.Length == 0) return b;
            int i = at % b.Length;
            if (cut) return b[..i];
            var copy = (byte[])b.Clone();
            copy[i] = value;
            return copy;
        });
        return Gen.Frequency((5, bytes), (1, damaged));
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/tokenize")]
    [InlineData("/v1/recommend")]
    public async Task ARandomBodyIsNeverA500(string path)
    {
        await Body(path).SampleAsync(async body =>
        {
            var (status, text, mediaType) = await PostAsync(path, body);
            var shown = $"{status} for {Encoding.UTF8.GetString(body)}: {text}";
            Assert.True(status is 200 or (>= 400 and < 500), shown);
            if (mediaType == "text/event-stream") return;   // a stream (errors in it are events)
            var json = ServerHarness.TryParse(text);
            Assert.True(json is not null, shown);
            if (status >= 400)
            {
                Assert.False(string.IsNullOrWhiteSpace((string?)json!["error"]?["message"]), shown);
                Assert.False(string.IsNullOrWhiteSpace((string?)json["error"]!["type"]), shown);
            }
        }, iter: 150, threads: 1);
    }
}
