using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Mamba4.IO;
using Microsoft.Data.Sqlite;

namespace Mamba4.Tests.Server;

/// <summary>`mamba4 serve` as a separate process on a real Kestrel socket (127.0.0.1, an ephemeral port).</summary>
public class ServeCliTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    internal sealed class ServeProcess : IDisposable
    {
        public required Process Process { get; init; }
        public required Uri BaseUrl { get; init; }
        public required StringBuilder Output { get; init; }
        public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

        public static ServeProcess Start(params string[] args)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Mamba4.Cli.dll"));
            psi.ArgumentList.Add("serve");
            foreach (var a in (string[])[.. args, "--port", "0", "--quiet"]) psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            var output = new StringBuilder();
            var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
            p.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (output) output.AppendLine(e.Data);
                var m = Regex.Match(e.Data, @"listening on (http://127\.0\.0\.1:\d+)");
                if (m.Success) listening.TrySetResult(new Uri(m.Groups[1].Value));
            };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            if (!listening.Task.Wait(TimeSpan.FromSeconds(60)))
            {
                p.Kill(true);
                throw new TimeoutException("mamba4 serve did not start: " + output);
            }
            var server = new ServeProcess { Process = p, BaseUrl = listening.Task.Result, Output = output };
            server.Client.BaseAddress = server.BaseUrl;
            return server;
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(true);
            Process.WaitForExit(10_000);
            Process.Dispose();
            Client.Dispose();
        }
    }

    [Fact]
    public async Task ServeAnswersOnLoopbackEqualsGenerateGreedyAndStopsOnSigterm()
    {
        var dir = ServerHarness.HfMamba;
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        int count = (int)reference.Get("generate.output").NumElements - prompt.Length;
        var (code, stdout, stderr) = CliTests.Run("generate", "--model", dir, "--prompt-ids", string.Join(",", prompt), "--max-new-tokens", count.ToString(), "--greedy");
        Assert.True(code == 0, stderr);
        var generated = stdout.Trim().Split('\n')[^1].Split(',').Select(long.Parse).ToArray()[prompt.Length..];

        using var server = ServeProcess.Start("--model", dir);
        Assert.Equal("127.0.0.1", server.BaseUrl.Host);
        var health = await server.Client.GetFromJsonAsync<JsonObject>("/health", Ct);
        Assert.Equal("ok", health!["status"]!.GetValue<string>());
        using var response = await server.Client.PostAsync("/v1/completions",
            new StringContent(JsonSerializer.Serialize(new { prompt, max_tokens = count, temperature = 0 }), Encoding.UTF8, "application/json"), Ct);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
        Assert.Equal(generated, body["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));

        // SIGTERM: a graceful stop, exit code 0.
        using (var kill = Process.Start("kill", ["-TERM", server.Process.Id.ToString()])) kill.WaitForExit();
        Assert.True(server.Process.WaitForExit(15_000), "mamba4 serve did not stop on SIGTERM: " + server.Output);
        Assert.Equal(0, server.Process.ExitCode);
    }

    /// <summary>
    /// SIGTERM or SIGINT while a completion streams: the port closes, the stream gets --drain seconds, then an error
    /// event says the server is shutting down, and the process exits 0.
    /// </summary>
    [Theory]
    [InlineData("TERM", "1")]
    [InlineData("INT", "0.5")]
    public async Task ASignalDrainsTheStreamsForTheDrainTimeThenExitsZero(string signal, string drain)
    {
        // A process started with SIGINT ignored (a background job of a non-interactive shell) passes that on to the server,
        // which then rightly keeps running: there is nothing to test.
        if (signal == "INT" && SignalIgnored(2)) Assert.Skip("SIGINT is ignored in this test process (inherited from whatever started it), so the server would ignore it too");
        using var server = ServeProcess.Start("--model", ServerHarness.HfMamba, "--max-tokens", "100000000", "--drain", drain);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("""{"prompt": [1], "max_tokens": 100000000, "stream": true}""", System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct));

        using (var kill = Process.Start("kill", [$"-{signal}", server.Process.Id.ToString()])) await kill.WaitForExitAsync(Ct);
        string? last = null;
        // bounded: a server that never saw the signal (say, SIGINT ignored by whatever started the tests) must fail this test, not hang the suite
        using var readLimit = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        readLimit.CancelAfter(TimeSpan.FromSeconds(60));
        try { while (await reader.ReadLineAsync(readLimit.Token) is { } line) if (line.Length > 0) last = line; }
        catch (IOException) { }
        catch (HttpRequestException) { }
        catch (OperationCanceledException) when (!Ct.IsCancellationRequested) { Assert.Fail($"the stream did not end within 60 s of SIG{signal}: " + server.Output); }
        Assert.True(server.Process.WaitForExit(30_000), $"mamba4 serve did not exit after SIG{signal}: " + server.Output);
        Assert.Equal(0, server.Process.ExitCode);
        Assert.Contains("shutting down", last ?? "");
    }

    /// <summary>
    /// The drain ends while a stream's write waits on a client that reads slowly (a 4 KB receive buffer, 3 s without
    /// reading): the client still gets every event it was sent and then the "shutting down" one. A write cancelled by the
    /// drain mid-flush made Kestrel reset the connection, and the tokens still queued for the stream kept it going past the
    /// drain.
    /// </summary>
    [Fact]
    public async Task TheDrainsEndReachesAClientThatReadsSlowly()
    {
        using var server = ServeProcess.Start("--model", ServerHarness.HfMamba, "--max-tokens", "100000000", "--drain", "0.5");
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, ct) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                try { await socket.ConnectAsync(context.DnsEndPoint, ct); }
                catch { socket.Dispose(); throw; }
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler) { BaseAddress = server.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("""{"prompt": [1], "max_tokens": 100000000, "stream": true}""", Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct));
        await Task.Delay(3000, Ct);   // not reading: the buffers fill and the server's write waits (Kestrel allows 5 s of that)
        using (var kill = Process.Start("kill", ["-TERM", server.Process.Id.ToString()])) await kill.WaitForExitAsync(Ct);
        await Task.Delay(1500, Ct);   // the drain (0.5 s) ends while that write waits
        string? last = null;
        var events = 0;
        using var readLimit = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        readLimit.CancelAfter(TimeSpan.FromSeconds(60));
        try { while (await reader.ReadLineAsync(readLimit.Token) is { } line) if (line.Length > 0) { last = line; events++; } }
        catch (Exception e) when (e is IOException or HttpRequestException) { Assert.Fail($"the stream broke after {events} events ({e.Message}); the last: {last}"); }
        Assert.True(server.Process.WaitForExit(30_000), "mamba4 serve did not exit after SIGTERM: " + server.Output);
        Assert.Equal(0, server.Process.ExitCode);
        Assert.Contains("shutting down", last ?? "");
    }

    /// <summary>Whether signal <paramref name="number"/> is ignored in this process (Linux: /proc/self/status, SigIgn).</summary>
    private static bool SignalIgnored(int number)
    {
        var line = File.Exists("/proc/self/status") ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:")) : null;
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) >> (number - 1) & 1) == 1;
    }

    [Fact]
    public void ServeRefusesAMissingModelDirectoryWithItsName()
    {
        var (code, _, stderr) = CliTests.Run("serve", "--model", "/nonexistent/lm", "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("/nonexistent/lm", stderr);
        (code, _, stderr) = CliTests.Run("serve", "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("--model", stderr);
    }

    [Theory]
    [InlineData("--idempotency-hours", "0", "error: --idempotency-hours must be in (0, 8760], got 0")]
    [InlineData("--drain", "-1", "error: --drain must be in [0, 3600] seconds, got -1")]
    [InlineData("--stall-seconds", "0", "error: --stall-seconds must be in (0, 86400], got 0")]
    public void ServeRefusesAnOutOfRangeOptionInOneLine(string option, string value, string expected)
    {
        var (code, stdout, stderr) = CliTests.Run("serve", "--model", ServerHarness.HfMamba, "--port", "0", option, value);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal(expected, stderr.Trim());
    }

    [Fact]
    public void ServeRefusesANonLoopbackHostWithoutAKeyAndReadsTheKeyFromTheEnvironment()
    {
        // No key: one line naming both ways out, before the model is even looked at.
        var (code, stdout, stderr) = CliTests.RunWith(new Dictionary<string, string> { ["MAMBA4_API_KEY"] = "" }, "serve", "--host", "0.0.0.0", "--model", "/nonexistent/lm", "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("1 to 1024 characters, got 0", stderr);   // an empty MAMBA4_API_KEY is a mistake, not "no key"
        (code, stdout, stderr) = CliTests.Run("serve", "--host", "0.0.0.0", "--model", "/nonexistent/lm", "--port", "0");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains("--host 0.0.0.0", line);
        Assert.Contains("--api-key", line);
        Assert.Contains("--insecure-no-auth", line);
        // MAMBA4_API_KEY is the key: the host is accepted, and the missing model is what stops it.
        (code, _, stderr) = CliTests.RunWith(new Dictionary<string, string> { ["MAMBA4_API_KEY"] = "k3y-from-env" }, "serve", "--host", "0.0.0.0", "--model", "/nonexistent/lm", "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("/nonexistent/lm", stderr);
        Assert.DoesNotContain("--insecure-no-auth", stderr);
        // --api-key wins over the environment.
        (code, _, stderr) = CliTests.RunWith(new Dictionary<string, string> { ["MAMBA4_API_KEY"] = "k3y-from-env" }, "serve", "--api-key", "two words", "--model", "/nonexistent/lm", "--port", "0");
        Assert.Equal(1, code);
        Assert.Contains("printable ASCII", stderr);
    }

    /// <summary>
    /// kill -9 while events are being posted: after a restart, every acknowledged event is in the user's state
    /// (at most the one in flight may be there too), and the state equals a full forward over that history.
    /// </summary>
    [Fact]
    public async Task EveryAcknowledgedEventSurvivesKill9()
    {
        var db = Path.Combine(Path.GetTempPath(), "mamba4-kill9-" + Guid.NewGuid().ToString("N")[..8] + ".sqlite");
        var rng = new Random(9);
        string[] users = ["u1", "u2", "u3"];
        var sent = users.ToDictionary(u => u, _ => Enumerable.Range(0, 400).Select(_ => (long)rng.Next(1, 50)).ToArray());
        var acked = users.ToDictionary(u => u, _ => 0);
        try
        {
            using (var server = ServeProcess.Start("--rec", ServerHarness.Rec1, "--state-db", db))
            {
                using var stop = new CancellationTokenSource();
                var posters = users.Select(u => Task.Run(async () =>
                {
                    for (int i = 0; i < sent[u].Length && !stop.IsCancellationRequested; i++)
                    {
                        try
                        {
                            using var r = await server.Client.PostAsync($"/v1/users/{u}/events", new StringContent($"{{\"items\": [{sent[u][i]}]}}", Encoding.UTF8, "application/json"), stop.Token);
                            if (!r.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                            acked[u] = i + 1;
                        }
                        catch (Exception e) when (e is HttpRequestException or OperationCanceledException) { return; }
                    }
                })).ToArray();
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (users.Sum(u => acked[u]) < 60 && DateTime.UtcNow < deadline) await Task.Delay(10, Ct);
                server.Process.Kill(entireProcessTree: true);   // SIGKILL: no shutdown, no flush
                server.Process.WaitForExit(10_000);
                stop.Cancel();
                await Task.WhenAll(posters);
            }
            Assert.True(users.Sum(u => acked[u]) >= 60, "too few events were acknowledged before the kill");
            using (var server = ServeProcess.Start("--rec", ServerHarness.Rec1, "--state-db", db))
                foreach (var u in users)
                {
                    var info = JsonNode.Parse(await server.Client.GetStringAsync($"/v1/users/{u}", Ct))!;
                    int length = info["length"]!.GetValue<int>();
                    Assert.InRange(length, acked[u], acked[u] + 1);
                    var recs = JsonNode.Parse(await server.Client.GetStringAsync($"/v1/users/{u}/recommendations?k=49", Ct))!;
                    var scores = RecServerTests.FullForwardScores(sent[u][..length]);
                    foreach (var item in recs["items"]!.AsArray())
                        Assert.Equal(scores[item!["item"]!.GetValue<long>()], item["score"]!.GetValue<float>(), 1e-4);
                }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(db + suffix);
        }
    }
}
