using System.ClientModel;
using System.ClientModel.Primitives;
using Mamba4.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using OpenAI;
using OpenAI.Chat;

namespace Mamba4.Tests.Server;

/// <summary>Mamba4's endpoints inside someone else's ASP.NET Core app: AddMamba4 + MapMamba4 under a prefix.</summary>
public class HostingTests
{
    [Fact]
    public async Task AnAppHostsTheEndpointsUnderAPrefixAndKeepsItsOwnRoutesOutsideTheGuard()
    {
        var dir = OpenAiSdkTests.ModelDir("{% for m in messages %}{{ m.content }}{% endfor %}");
        try
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseTestServer();
            builder.Services.AddMamba4(new ServerOptions { ModelDir = dir, ApiKey = "k1", Log = false });
            await using var app = builder.Build();
            app.MapGet("/hello", () => "from the host app");
            app.MapMamba4("/mamba4");
            await app.StartAsync(TestContext.Current.CancellationToken);
            using var http = app.GetTestClient();

            Assert.Equal("from the host app", await http.GetStringAsync("/hello", TestContext.Current.CancellationToken));   // no key needed
            Assert.Equal(401, (int)(await http.GetAsync("/mamba4/v1/models", TestContext.Current.CancellationToken)).StatusCode);
            Assert.Equal(200, (int)(await http.GetAsync("/mamba4/health", TestContext.Current.CancellationToken)).StatusCode);   // open, as in `mamba4 serve`
            Assert.Equal(404, (int)(await http.GetAsync("/v1/models", TestContext.Current.CancellationToken)).StatusCode);       // nothing at the root

            var client = new OpenAIClient(new ApiKeyCredential("k1"), new OpenAIClientOptions
            {
                Endpoint = new Uri(http.BaseAddress!, "/mamba4/v1"), Transport = new HttpClientPipelineTransport(http), RetryPolicy = new ClientRetryPolicy(0),
            });
            ChatCompletion c = await client.GetChatClient("m").CompleteChatAsync([new UserChatMessage("ab")], new ChatCompletionOptions { MaxOutputTokenCount = 3 }, TestContext.Current.CancellationToken);
            Assert.Equal(3, c.Usage.OutputTokenCount);
            await app.StopAsync(TestContext.Current.CancellationToken);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void MapMamba4WithoutAddMamba4SaysWhatIsMissing()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        using var app = builder.Build();
        var e = Assert.Throws<InvalidOperationException>(() => app.MapMamba4());
        Assert.Contains("AddMamba4", e.Message);
    }
}
