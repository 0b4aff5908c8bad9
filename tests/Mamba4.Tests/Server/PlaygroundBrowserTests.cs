using System.Diagnostics;
using System.IO.Compression;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Server;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Mamba4.Tests.Server;

/// <summary>
/// The playground page in a real headless browser (Debian's chromium, driven over the DevTools protocol): type a
/// prompt and watch tokens stream, stop, a greedy run equal to the API's; a history's recommendations; a screenshot
/// of the page checked (PNG of the window's size, not blank). The server has an API key: the page's calls fail with the
/// server's message (shown as text, never as HTML) until the key is typed in its field. Skips where no chromium is
/// installed (.ci/run installs it).
/// </summary>
public sealed class PlaygroundBrowserTests
{
    private static string? FindChromium()
    {
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    [Fact]
    public async Task ThePlaygroundStreamsTokensAndShowsRecommendationsInAHeadlessBrowser()
    {
        var chromium = FindChromium();
        if (chromium is null) Assert.Skip("chromium is not installed (apt-get install chromium): the browser test of the playground is skipped");
        var ct = TestContext.Current.CancellationToken;
        var tmp = Directory.CreateTempSubdirectory("mamba4-browser-").FullName;
        var options = new ServerOptions
        {
            ModelDir = CompletionServerTests.CharModelDir(), RecDir = ServerHarness.Rec1, StateDb = Path.Combine(tmp, "users.sqlite"),
            Port = 0, Log = false, MaxTokens = 1_000_000, ApiKey = "playground-key",
        };
        Process? browser = null;
        await using var app = MambaServer.Build(options);
        try
        {
            await app.StartAsync(ct);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", options.ApiKey);
            browser = Process.Start(new ProcessStartInfo(chromium,
                ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", "--window-size=1100,900",
                 $"--user-data-dir={Path.Combine(tmp, "profile")}", "about:blank"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            string? endpoint = null;
            using (var startup = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                startup.CancelAfter(TimeSpan.FromSeconds(60));
                while (endpoint is null && await browser.StandardError.ReadLineAsync(startup.Token) is { } line)
                    if (line.StartsWith("DevTools listening on ", StringComparison.Ordinal)) endpoint = line["DevTools listening on ".Length..];
            }
            Assert.NotNull(endpoint);
            _ = browser.StandardError.ReadToEndAsync(ct);   // keep draining
            var debug = new Uri(endpoint);
            var targets = JsonNode.Parse(await http.GetStringAsync($"http://{debug.Authority}/json/list", ct))!.AsArray();
            var page = targets.First(t => (string?)t!["type"] == "page")!;
            await using var cdp = await Cdp.ConnectAsync(new Uri((string)page["webSocketDebuggerUrl"]!), ct);

            await cdp.SendAsync("Page.enable", new JsonObject(), ct);
            await cdp.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = 1100, ["height"] = 900, ["deviceScaleFactor"] = 1, ["mobile"] = false }, ct);
            await cdp.SendAsync("Page.navigate", new JsonObject { ["url"] = address + "/" }, ct);
            await cdp.WaitForAsync("document.getElementById('status').textContent.includes('streams active')", ct);

            // Without the key: the server's refusal, as text. Then the key, typed into its field.
            await cdp.EvalAsync("document.getElementById('recommend').click(); true", ct);
            await cdp.WaitForAsync("document.getElementById('rec-info').textContent.includes('missing API key')", ct);
            await cdp.EvalAsync("const k = document.getElementById('api-key'); k.value = ''; k.focus(); true", ct);
            await cdp.SendAsync("Input.insertText", new JsonObject { ["text"] = options.ApiKey }, ct);
            Assert.Equal(options.ApiKey, (string?)await cdp.EvalAsync("sessionStorage.getItem('mamba4-api-key')", ct));
            // An error message that quotes markup (a bad user id) stays text: no element, no script.
            await cdp.EvalAsync("const u = document.getElementById('user'); u.value = '<img src=x onerror=\"window.injected = 1\">'; document.getElementById('user-recs').click(); true", ct);
            await cdp.WaitForAsync("document.getElementById('rec-info').textContent.includes('<img src=x')", ct);
            Assert.Equal(true, (bool?)await cdp.EvalAsync("document.querySelector('#rec-info img') === null && window.injected === undefined", ct));

            // Type a prompt (real key input into the focused textarea), ask for a long sampled run, watch it stream, stop it.
            await cdp.EvalAsync("const p = document.getElementById('prompt'); p.value = ''; p.focus(); document.getElementById('max_tokens').value = '1000000'; true", ct);
            await cdp.SendAsync("Input.insertText", new JsonObject { ["text"] = "the cat sat" }, ct);
            Assert.Equal("the cat sat", (string?)await cdp.EvalAsync("document.getElementById('prompt').value", ct));
            await cdp.EvalAsync("document.getElementById('go').click(); true", ct);
            await cdp.WaitForAsync("document.getElementById('gen-info').textContent.includes('tokens/s')", ct);
            int first = TokenCount((string)(await cdp.EvalAsync("document.getElementById('gen-info').textContent", ct))!);
            await cdp.WaitForAsync($"parseInt(document.getElementById('gen-info').textContent) > {first + 5}", ct);   // more tokens arrived: it streams
            await cdp.EvalAsync("document.getElementById('stop').click(); true", ct);
            await cdp.WaitForAsync("!document.getElementById('go').disabled", ct);
            var streamed = (string)(await cdp.EvalAsync("document.querySelector('#output span:not(.prompt)').textContent", ct))!;
            Assert.True(streamed.Length > first, $"only {streamed.Length} characters streamed");
            Assert.All(streamed, c => Assert.Contains(c, "abcdefghijklmnopqrstuvwxyz .,!?\n"));

            // A greedy run of 30 tokens shows exactly the API's completion.
            await cdp.EvalAsync("document.getElementById('max_tokens').value = '30'; document.getElementById('temperature').value = '0'; document.getElementById('go').click(); true", ct);
            await cdp.WaitForAsync("document.getElementById('gen-info').textContent.includes('finished: length')", ct);
            var shown = (string)(await cdp.EvalAsync("document.querySelector('#output span:not(.prompt)').textContent", ct))!;
            using (var response = await http.PostAsync("/v1/completions", new StringContent("""{"prompt": "the cat sat", "max_tokens": 30, "temperature": 0}""", Encoding.UTF8, "application/json"), ct))
                Assert.Equal((string?)JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!["choices"]![0]!["text"], shown);

            // A history's recommendations: the table lists k items, the first the API's best.
            await cdp.EvalAsync("document.getElementById('history').value = '5, 9, 2, 17'; document.getElementById('k').value = '7'; document.getElementById('recommend').click(); true", ct);
            await cdp.WaitForAsync("document.querySelectorAll('#rec-table tr').length === 8", ct);
            var firstItem = (string)(await cdp.EvalAsync("document.querySelector('#rec-table tr:nth-child(2) td:nth-child(2)').textContent", ct))!;
            using (var response = await http.PostAsync("/v1/recommend", new StringContent("""{"history": [5, 9, 2, 17], "k": 7}""", Encoding.UTF8, "application/json"), ct))
                Assert.Equal(JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!["items"]![0]!["item"]!.GetValue<long>().ToString(), firstItem);

            // The screenshot: a PNG of the window's size whose pixels are not all alike.
            var shot = await cdp.SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" }, ct);
            var png = Convert.FromBase64String((string)shot["data"]!);
            File.WriteAllBytes(Path.Combine(Path.GetTempPath(), "mamba4-playground.png"), png);
            var (width, height, distinct) = Png(png);
            Assert.Equal((1100, 900), (width, height));
            Assert.True(distinct > 50, $"the screenshot looks blank ({distinct} distinct pixel values)");
        }
        finally
        {
            if (browser is not null && !browser.HasExited) browser.Kill(entireProcessTree: true);
            browser?.Dispose();
            await app.StopAsync(CancellationToken.None);
            SqliteConnection.ClearAllPools();
            try { Directory.Delete(tmp, true); } catch (IOException) { }
            Directory.Delete(options.ModelDir, true);
        }
    }

    private static int TokenCount(string info) => int.Parse(info.Split(' ')[0]);

    /// <summary>Width, height and how many distinct RGB(A) colours the (8-bit, unfiltered-or-filtered) pixel rows hold — a blank page has one or two.</summary>
    private static (int Width, int Height, int Distinct) Png(byte[] png)
    {
        Assert.True(png.AsSpan(0, 8).SequenceEqual(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }), "not a PNG");
        static int Be(byte[] b, int o) => (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
        int width = Be(png, 16), height = Be(png, 20), channels = png[25] switch { 2 => 3, 6 => 4, _ => 0 };
        Assert.Equal(8, png[24]);
        Assert.True(channels > 0, $"unexpected PNG colour type {png[25]}");
        using var idat = new MemoryStream();
        for (int o = 8; o < png.Length;)
        {
            int len = Be(png, o);
            if (Encoding.ASCII.GetString(png, o + 4, 4) == "IDAT") idat.Write(png, o + 8, len);
            o += 12 + len;
        }
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        var data = raw.ToArray();
        int stride = 1 + width * channels;
        Assert.Equal((long)stride * height, data.Length);
        // Undo the row filters (PNG spec, section 9) and count the colours.
        var prev = new byte[width * channels];
        var cur = new byte[width * channels];
        var colours = new HashSet<int>();
        for (int y = 0; y < height; y++)
        {
            int filter = data[y * stride];
            for (int i = 0; i < cur.Length; i++)
            {
                int x = data[y * stride + 1 + i], a = i >= channels ? cur[i - channels] : 0, b = prev[i], c = i >= channels ? prev[i - channels] : 0;
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                cur[i] = (byte)(x + filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => pa <= pb && pa <= pc ? a : pb <= pc ? b : c });
            }
            for (int i = 0; i + 2 < cur.Length; i += channels) colours.Add((cur[i] << 16) | (cur[i + 1] << 8) | cur[i + 2]);
            (prev, cur) = (cur, prev);
        }
        return (width, height, colours.Count);
    }

    /// <summary>A minimal DevTools-protocol client: commands by id, events ignored.</summary>
    private sealed class Cdp : IAsyncDisposable
    {
        private readonly ClientWebSocket _ws;
        private int _id;

        private Cdp(ClientWebSocket ws) => _ws = ws;

        public static async Task<Cdp> ConnectAsync(Uri uri, CancellationToken ct)
        {
            var ws = new ClientWebSocket();
            await ws.ConnectAsync(uri, ct);
            return new Cdp(ws);
        }

        public async Task<JsonNode> SendAsync(string method, JsonObject parameters, CancellationToken ct)
        {
            int id = ++_id;
            var bytes = Encoding.UTF8.GetBytes(new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters }.ToJsonString());
            await _ws.SendAsync(bytes, WebSocketMessageType.Text, true, ct);
            var buffer = new byte[1 << 16];
            while (true)
            {
                using var message = new MemoryStream();
                WebSocketReceiveResult r;
                do
                {
                    r = await _ws.ReceiveAsync(buffer, ct);
                    message.Write(buffer, 0, r.Count);
                } while (!r.EndOfMessage);
                var node = JsonNode.Parse(message.ToArray())!;
                if ((int?)node["id"] != id) continue;
                if (node["error"] is { } error) throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
                return node["result"]!;
            }
        }

        /// <summary>Evaluates a JavaScript expression in the page; its value (awaited when a promise).</summary>
        public async Task<JsonNode?> EvalAsync(string expression, CancellationToken ct)
        {
            var r = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true }, ct);
            if (r["exceptionDetails"] is { } e) throw new InvalidOperationException($"{expression}: {e.ToJsonString()}");
            return r["result"]?["value"];
        }

        /// <summary>Polls a JavaScript condition until it holds (60 s at most: the machine may be busy); an exception (page still loading) counts as not yet.</summary>
        public async Task WaitForAsync(string condition, CancellationToken ct)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                string? last = null;
                try { if ((await EvalAsync(condition, ct))?.GetValue<bool>() == true) return; }
                catch (InvalidOperationException e) { last = e.Message; }   // e.g. the page is still loading
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"the page never satisfied: {condition} {last}");
                await Task.Delay(20, ct);
            }
        }

        public async ValueTask DisposeAsync()
        {
            try { await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); } catch (WebSocketException) { }
            _ws.Dispose();
        }
    }
}
