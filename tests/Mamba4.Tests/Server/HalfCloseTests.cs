using System.Net;
using System.Net.Sockets;
using System.Text;
using Mamba4.Server;
using Mamba4.Tasks.LanguageModeling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Mamba4.Tests.Server;

/// <summary>`mamba4 serve` on a real Kestrel socket, spoken to over raw TCP: half-closed and vanished clients.</summary>
public class HalfCloseTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A client that sends its request and then shuts down its sending side (a TCP half-close) still gets the whole response.</summary>
    [Fact]
    public async Task HalfClosedClientsGetTheirResponses()
    {
        var dir = CompletionServerTests.CharModelDir();
        try
        {
            await using var app = await StartAsync(new ServerOptions { ModelDir = dir, Port = 0, Log = false });
            int port = Port(app);
            var ids = LanguageModelFiles.LoadTokenizer(dir)!.Encode("hello");
            var response = await HalfClosedAsync(port, "/tokenize", """{"content": "hello"}""");
            Assert.StartsWith("HTTP/1.1 200", response);
            Assert.Contains($$"""{"tokens":[{{string.Join(",", ids)}}]}""", response);
            response = await HalfClosedAsync(port, "/v1/completions", """{"prompt": "the cat", "max_tokens": 200, "temperature": 0}""");
            Assert.StartsWith("HTTP/1.1 200", response);
            Assert.Contains("\"finish_reason\":\"length\"", response);
            Assert.Contains("\"completion_tokens\":200", response);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>A streaming client that closes its socket is still noticed (at the next writes): its stream leaves the batch.</summary>
    [Fact]
    public async Task AClosedStreamingClientFreesItsSlot()
    {
        await using var app = await StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, Port = 0, Log = false, MaxTokens = 1_000_000 });
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        using (var socket = await ConnectAsync(Port(app)))
        {
            await SendAsync(socket, Port(app), "/v1/completions", """{"prompt": [1, 2], "max_tokens": 1000000, "stream": true}""");
            var buffer = new byte[4096];
            var head = "";
            while (!head.Contains("data: ")) head += Encoding.UTF8.GetString(buffer, 0, await socket.ReceiveAsync(buffer, SocketFlags.None, Ct));
            Assert.StartsWith("HTTP/1.1 200", head);
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (ActiveStreams(metrics) > 0 && DateTime.UtcNow < deadline) await Task.Delay(20, Ct);
        Assert.Equal(0, ActiveStreams(metrics));
    }

    private static double ActiveStreams(ServerMetrics metrics) => metrics.ActiveStreams;

    private static async Task<WebApplication> StartAsync(ServerOptions options)
    {
        var app = MambaServer.Build(options);
        await app.StartAsync(Ct);
        return app;
    }

    private static int Port(WebApplication app) =>
        new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;

    private static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port, Ct);
        return socket;
    }

    private static async Task SendAsync(Socket socket, int port, string path, string json)
    {
        var body = Encoding.UTF8.GetBytes(json);
        var head = $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head).Concat(body).ToArray(), Ct);
    }

    /// <summary>Sends the request, shuts down the sending side, and reads until the server closes (30 s at most).</summary>
    private static async Task<string> HalfClosedAsync(int port, string path, string json)
    {
        using var socket = await ConnectAsync(port);
        await SendAsync(socket, port, path, json);
        socket.Shutdown(SocketShutdown.Send);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var received = new MemoryStream();
        var buffer = new byte[8192];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) received.Write(buffer, 0, n);
        return Encoding.UTF8.GetString(received.ToArray());
    }
}
