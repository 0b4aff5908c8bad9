using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Mamba4.Server;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Mamba4.Tests.Server;

/// <summary>
/// The playground page in a real headless browser (Debian's chromium, driven by Microsoft.Playwright through its
/// ExecutablePath: no browser download): type a prompt and watch tokens stream, stop, a greedy run equal to the API's;
/// a history's recommendations; a screenshot of the page checked (PNG of the window's size, not blank). The server has
/// an API key: the page's calls fail with the server's message (shown as text, never as HTML) until the key is typed in
/// its field. Skips where no chromium is installed (.ci/run installs it).
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
        await using var app = MambaServer.Build(options);
        try
        {
            await app.StartAsync(ct);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", options.ApiKey);
            using var playwright = await Playwright.CreateAsync();
            // The flags this machine's chromium needs (no sandbox as root; no background connections on a closed network).
            await using var browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = chromium, Headless = true,
                Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            });
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1100, Height = 900 } });
            page.SetDefaultTimeout(60_000);   // the machine may be busy
            var expect = new LocatorAssertionsToContainTextOptions { Timeout = 60_000 };
            await page.GotoAsync(address + "/");
            await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("streams active", expect);

            // Without the key: the server's refusal, as text. Then the key, typed into its field.
            await page.ClickAsync("#recommend");
            await Assertions.Expect(page.Locator("#rec-info")).ToContainTextAsync("missing API key", expect);
            await page.FillAsync("#api-key", "");
            await page.Locator("#api-key").PressSequentiallyAsync(options.ApiKey);
            Assert.Equal(options.ApiKey, await page.EvaluateAsync<string>("sessionStorage.getItem('mamba4-api-key')"));
            // An error message that quotes markup (a bad user id) stays text: no element, no script.
            await page.FillAsync("#user", "<img src=x onerror=\"window.injected = 1\">");
            await page.ClickAsync("#user-recs");
            await Assertions.Expect(page.Locator("#rec-info")).ToContainTextAsync("<img src=x", expect);
            Assert.True(await page.EvaluateAsync<bool>("document.querySelector('#rec-info img') === null && window.injected === undefined"));

            // Type a prompt (key by key into the textarea), ask for a long sampled run, watch it stream, stop it.
            await page.FillAsync("#prompt", "");
            await page.Locator("#prompt").PressSequentiallyAsync("the cat sat");
            Assert.Equal("the cat sat", await page.InputValueAsync("#prompt"));
            await page.FillAsync("#max_tokens", "1000000");
            await page.ClickAsync("#go");
            await Assertions.Expect(page.Locator("#gen-info")).ToContainTextAsync("tokens/s", expect);
            int first = TokenCount(await page.TextContentAsync("#gen-info") ?? "");
            await page.WaitForFunctionAsync($"parseInt(document.getElementById('gen-info').textContent) > {first + 5}");   // more tokens arrived: it streams
            await page.ClickAsync("#stop");
            await Assertions.Expect(page.Locator("#go")).ToBeEnabledAsync(new() { Timeout = 60_000 });
            var streamed = await page.TextContentAsync("#output span:not(.prompt)") ?? "";
            Assert.True(streamed.Length > first, $"only {streamed.Length} characters streamed");
            Assert.All(streamed, c => Assert.Contains(c, "abcdefghijklmnopqrstuvwxyz .,!?\n"));

            // A greedy run of 30 tokens shows exactly the API's completion.
            await page.FillAsync("#max_tokens", "30");
            await page.FillAsync("#temperature", "0");
            await page.ClickAsync("#go");
            await Assertions.Expect(page.Locator("#gen-info")).ToContainTextAsync("finished: length", expect);
            var shown = await page.TextContentAsync("#output span:not(.prompt)");
            using (var response = await http.PostAsync("/v1/completions", new StringContent("""{"prompt": "the cat sat", "max_tokens": 30, "temperature": 0}""", Encoding.UTF8, "application/json"), ct))
                Assert.Equal((string?)JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!["choices"]![0]!["text"], shown);

            // A history's recommendations: the table lists k items, the first the API's best.
            await page.FillAsync("#history", "5, 9, 2, 17");
            await page.FillAsync("#k", "7");
            await page.ClickAsync("#recommend");
            await Assertions.Expect(page.Locator("#rec-table tr")).ToHaveCountAsync(8, new() { Timeout = 60_000 });
            var firstItem = await page.TextContentAsync("#rec-table tr:nth-child(2) td:nth-child(2)");
            using (var response = await http.PostAsync("/v1/recommend", new StringContent("""{"history": [5, 9, 2, 17], "k": 7}""", Encoding.UTF8, "application/json"), ct))
                Assert.Equal(JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!["items"]![0]!["item"]!.GetValue<long>().ToString(), firstItem);

            // The screenshot: a PNG of the window's size whose pixels are not all alike.
            var png = await page.ScreenshotAsync(new() { Type = ScreenshotType.Png });
            File.WriteAllBytes(Path.Combine(Path.GetTempPath(), "mamba4-playground.png"), png);
            var (width, height, distinct) = Png(png);
            Assert.Equal((1100, 900), (width, height));
            Assert.True(distinct > 50, $"the screenshot looks blank ({distinct} distinct pixel values)");
        }
        finally
        {
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
}
