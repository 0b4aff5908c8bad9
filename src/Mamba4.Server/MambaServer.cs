using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Mamba4.Models;
using Mamba4.Server.Forecast;
using Mamba4.Server.Rec;
using Mamba4.Server.Text;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tasks.Forecasting;
using Mamba4.Tasks.Recommendation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Mamba4.Server;

/// <summary>
/// Builds the `mamba4 serve` application: loads the models (a bad directory fails here, before any port is
/// bound, with a message naming the file), then maps the endpoints:
/// <code>
/// POST /v1/completions            OpenAI completions (stream → server-sent events), continuous batching
/// POST /v1/chat/completions       OpenAI chat: the messages through the model's chat_template (or the default), then as a completion
/// POST /tokenize, /detokenize     with a tokenizer in the model directory
/// GET  /v1/models                 the served model
/// POST /v1/recommend              top-k after a given history
/// POST /v1/users/{id}/events      append interactions (O(1) state update, committed to SQLite)
/// GET  /v1/users/{id}/recommendations?k=10
/// GET|DELETE /v1/users/{id}
/// POST /v1/forecast               the next horizon after given rows
/// POST /v1/series/{id}/values     append rows to a growing series (a streaming model: O(1) state update, in SQLite)
/// GET  /v1/series/{id}/forecast   the next horizon after the stored series;  GET|DELETE /v1/series/{id}
/// GET  /health (503 with a reason while the decoder is stalled, failed or draining), /metrics (Prometheus text, OpenTelemetry's exporter), / (a playground page)
/// </code>
/// Every refusal is a JSON error {"error": {"message", "type", "param", "code"}} with a 4xx status. Before any
/// endpoint, <see cref="RequestGuard"/> checks the Host header (421), CORS (--cors), the API key (401) and that a
/// POST body is JSON (415); Kestrel's connections go through <see cref="HalfOpenConnection"/> (a half-closed
/// client still gets its response).
/// </summary>
public static class MambaServer
{
    public static WebApplication Build(ServerOptions options, Action<WebApplicationBuilder>? configure = null) => Build(options, configure, null);

    /// <summary>As <see cref="Build(ServerOptions, Action{WebApplicationBuilder}?)"/>, serving <paramref name="model"/> (owned from here on) instead of loading ModelDir (benchmarks).</summary>
    internal static WebApplication Build(ServerOptions options, Action<WebApplicationBuilder>? configure, MambaLM? model)
    {
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        // --quiet drops the request log, not the errors.
        builder.Logging.AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff "; });
        builder.Logging.SetMinimumLevel(options.Log ? LogLevel.Information : LogLevel.Error);
        builder.Logging.AddFilter("Microsoft", options.Log ? LogLevel.Warning : LogLevel.Error);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            if (options.Host is "localhost") k.ListenLocalhost(options.Port, l => l.Use(HalfOpenConnection.Middleware));
            else if (IPAddress.TryParse(options.Host, out var ip)) k.Listen(ip, options.Port, l => l.Use(HalfOpenConnection.Middleware));
            else throw new ArgumentException($"--host must be an IP address or localhost, got '{options.Host}'");
        });
        // Requests still running at the end of --drain are cancelled by then: the host waits a little longer for them.
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(options.DrainSeconds + 10));
        builder.Services.AddMamba4(options, model);
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapMamba4();
        return app;
    }

    /// <summary>
    /// Loads the models of <paramref name="options"/> now (a bad directory fails here, naming the file) and registers
    /// the services that <see cref="MapMamba4"/> serves; the container owns (and disposes) them. For any ASP.NET Core
    /// app: <c>builder.Services.AddMamba4(new ServerOptions { ModelDir = "…" })</c>, then <c>app.MapMamba4()</c>.
    /// The options' Host/Port/Log are `mamba4 serve`'s own (Kestrel and logging stay the host app's); the Host-header
    /// check allows localhost, the options' Host and AllowedHosts (add the app's names, or "*").
    /// </summary>
    public static IServiceCollection AddMamba4(this IServiceCollection services, ServerOptions options) => services.AddMamba4(options, null);

    private static IServiceCollection AddMamba4(this IServiceCollection services, ServerOptions options, MambaLM? model)
    {
        options.Validate();
        var device = options.ResolveDevice();
        var metrics = new ServerMetrics();
        TextService? text = null;
        RecService? rec = null;
        ForecastService? forecast = null;
        try
        {
            if (model is not null)
            {
                model.Eval();
                model.To(device);
                text = new TextService(model, null, options.ModelDir ?? "in-memory", options, metrics);
            }
            else if (options.ModelDir is { } dir) text = LoadText(dir, device, options, metrics);
            if (options.RecDir is { } recDir) rec = LoadRec(recDir, device, options, metrics);
            if (options.ForecastDir is { } forecastDir) forecast = LoadForecast(forecastDir, device, options);
        }
        catch
        {
            text?.Dispose();
            rec?.Dispose();
            forecast?.Dispose();
            throw;
        }
        services.AddSingleton(_ => metrics);   // (a factory registration: disposed with the app)
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("mamba4"))
            .WithMetrics(m => m.AddMeter(metrics.MeterName)
                .AddView(i => i.Meter.Name == metrics.MeterName && i is Histogram<double> ? new ExplicitBucketHistogramConfiguration { Boundaries = ServerMetrics.SecondsBuckets } : null)
                .AddPrometheusExporter(p =>
                {
                    p.ScrapeResponseCacheDurationMilliseconds = 0;   // every scrape reads the instruments now
                    p.ScopeInfoEnabled = false;   // no otel_scope_name label: the series keep the names and labels they always had
                }));
        // Traces leave the process where an OTLP collector is named (the standard variable); else only an ActivityListener sees them.
        if (Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 })
            telemetry.WithTracing(t => t.AddSource(ServerTracing.SourceName).AddOtlpExporter());
        services.AddSingleton(options);
        // Factory registrations: the container owns (and disposes) them when the app is disposed.
        if (text is not null) services.AddSingleton(_ => text);
        if (rec is not null) services.AddSingleton(_ => rec);
        if (forecast is not null) services.AddSingleton(_ => forecast);
        return services;
    }

    /// <summary>
    /// Maps the endpoints of the services <see cref="AddMamba4(IServiceCollection, ServerOptions)"/> registered, under <paramref name="pathPrefix"/> (e.g.
    /// "/mamba4": then /mamba4/v1/chat/completions; an OpenAI client's endpoint is http://host/mamba4/v1). The error
    /// handling (JSON errors, the request log, metrics) and <see cref="RequestGuard"/> (Host, CORS, API key, JSON bodies)
    /// apply to the paths under the prefix — to every path without one, as in `mamba4 serve`.
    /// </summary>
    public static WebApplication MapMamba4(this WebApplication app, string pathPrefix = "")
    {
        var options = app.Services.GetService<ServerOptions>() ?? throw new InvalidOperationException("MapMamba4 needs builder.Services.AddMamba4(options) first");
        var prefix = new PathString(pathPrefix.TrimEnd('/'));
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        var device = options.ResolveDevice();
        // Resolve now so that the container disposes them even if no request ever asks.
        var text = app.Services.GetService<TextService>();
        var rec = app.Services.GetService<RecService>();
        var forecast = app.Services.GetService<ForecastService>();
        if (text is not null) app.Lifetime.ApplicationStopping.Register(() => text.Scheduler.Drain(TimeSpan.FromSeconds(options.DrainSeconds)));
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Mamba4.Server");
        var started = Stopwatch.StartNew();

        long startedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var guard = new RequestGuard(options, prefix);
        app.UseWhen(ctx => !prefix.HasValue || ctx.Request.Path.StartsWithSegments(prefix), branch => branch.Use(async (ctx, next) =>
        {
            long start = Stopwatch.GetTimestamp();
            using var activity = ServerTracing.Source.StartActivity($"{ctx.Request.Method}", ActivityKind.Server);
            try
            {
                await next(ctx);
                if (!ctx.Response.HasStarted && ctx.Response.StatusCode is 404 or 405 && ctx.Response.ContentType is null)
                {
                    int status = ctx.Response.StatusCode;
                    await ApiErrors.WriteAsync(ctx, status, status == 404
                        ? $"no endpoint {ctx.Request.Method} {ctx.Request.Path}"
                        : $"{ctx.Request.Method} is not allowed on {ctx.Request.Path}");
                }
            }
            catch (ApiException e) when (!ctx.Response.HasStarted)
            {
                await ApiErrors.WriteAsync(ctx, e.Status, e.Message, e.Param, e.Code);
            }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
            {
                await ApiErrors.WriteAsync(ctx, e.StatusCode, e.Message);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
            catch (Exception e) when (!ctx.Response.HasStarted)
            {
                // The client gets no internal text (paths, types, library messages); the log has it, under the request's id.
                log.LogError(e, "{Method} {Path} failed (request {Id})", ctx.Request.Method, ctx.Request.Path.Value, ctx.TraceIdentifier);
                await ApiErrors.WriteAsync(ctx, 500, $"internal error (request {ctx.TraceIdentifier}): the details are in the server's log");
            }
            finally
            {
                var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                var route = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                metrics.Request(route, ctx.Response.StatusCode, elapsed);
                ServerTracing.EndRequest(activity, ctx, route);
                if (route != prefix + "/metrics" && route != prefix + "/health")
                    log.LogInformation("request {Method} {Path} status={Status} ms={Milliseconds:F1}", ctx.Request.Method, ctx.Request.Path.Value, ctx.Response.StatusCode, elapsed * 1000);
            }
        }).Use(guard.InvokeAsync));   // Host, CORS, API key, JSON bodies

        var routes = app.MapGroup(prefix);
        routes.MapGet("/", async ctx =>
        {
            ctx.Response.ContentType = "text/html; charset=utf-8";
            await ctx.Response.WriteAsync(Playground.Html);
        });
        routes.MapGet("/health", async ctx =>
        {
            // 503 while the decoding loop cannot serve: it failed, it made no progress for --stall-seconds, or it is draining.
            var problem = text?.Scheduler.Problem;
            if (problem is not null) ctx.Response.StatusCode = 503;
            var body = new Dictionary<string, object?>
            {
                ["status"] = problem is null ? "ok" : "unavailable", ["reason"] = problem, ["uptime_seconds"] = Math.Round(started.Elapsed.TotalSeconds, 1), ["device"] = device.ToString(),
                ["model"] = text?.Name, ["tokenizer"] = text is null ? null : text.Tokenizer is not null,
                ["active_streams"] = text?.Scheduler.Active, ["queued_streams"] = text?.Scheduler.Queued,
                ["stream_capacity"] = text?.Scheduler.Capacity, ["state_bytes"] = text?.Scheduler.StateBytes,
                ["rec_model_version"] = rec?.Version, ["rec_n_items"] = rec?.NItems,
                ["forecast_model_version"] = forecast?.Version, ["forecast_columns"] = forecast?.Saved.Columns,
                ["forecast_horizon"] = forecast?.Saved.Config.Horizon, ["forecast_streaming"] = forecast?.Streaming,
            };
            await ctx.Response.WriteAsJsonAsync(body, JsonBody.Output);
        });
        routes.MapPrometheusScrapingEndpoint("/metrics");

        RequestDelegate NoText = _ => throw ApiException.NotFound("no language model is served: start `mamba4 serve` with --model DIR");
        RequestDelegate NoRec = _ => throw ApiException.NotFound("no recommendation model is served: start `mamba4 serve` with --rec DIR");
        RequestDelegate NoForecast = _ => throw ApiException.NotFound("no forecasting model is served: start `mamba4 serve` with --forecast DIR");
        static string? Id(HttpContext ctx) => ctx.Request.RouteValues["id"] as string;

        routes.MapPost("/v1/completions", text is null ? NoText : text.CompleteAsync);
        routes.MapPost("/v1/chat/completions", text is null ? NoText : text.ChatAsync);
        routes.MapPost("/tokenize", text is null ? NoText : text.TokenizeAsync);
        routes.MapPost("/detokenize", text is null ? NoText : text.DetokenizeAsync);
        routes.MapGet("/v1/models", async ctx => await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object>
        {
            ["object"] = "list",
            ["data"] = text is null ? Array.Empty<object>() : [new Dictionary<string, object> { ["id"] = text.Name, ["object"] = "model", ["created"] = startedAt, ["owned_by"] = "mamba4" }],
        }, JsonBody.Output));
        routes.MapPost("/v1/recommend", rec is null ? NoRec : rec.RecommendAsync);
        RequestDelegate? NoEvents = rec is { Recurrent: null } ? _ => throw ApiException.NotFound(
            $"the served {RecModels.KindOf(rec.Model)} model has no per-user state (only Mamba4Rec's recurrent step has one): use POST /v1/recommend with the history") : null;
        routes.MapPost("/v1/users/{id}/events", rec is null ? NoRec : NoEvents ?? (ctx => rec.AppendEventsAsync(ctx, Id(ctx))));
        routes.MapGet("/v1/users/{id}/recommendations", rec is null ? NoRec : NoEvents ?? (ctx => rec.UserRecommendationsAsync(ctx, Id(ctx))));
        routes.MapGet("/v1/users/{id}", rec is null ? NoRec : NoEvents ?? (ctx => rec.UserInfoAsync(ctx, Id(ctx))));
        routes.MapDelete("/v1/users/{id}", rec is null ? NoRec : NoEvents ?? (ctx => rec.DeleteUserAsync(ctx, Id(ctx))));
        routes.MapPost("/v1/forecast", forecast is null ? NoForecast : forecast.ForecastAsync);
        routes.MapPost("/v1/series/{id}/values", forecast is null ? NoForecast : ctx => forecast.AppendAsync(ctx, Id(ctx)));
        routes.MapGet("/v1/series/{id}/forecast", forecast is null ? NoForecast : ctx => forecast.SeriesForecastAsync(ctx, Id(ctx)));
        routes.MapGet("/v1/series/{id}", forecast is null ? NoForecast : ctx => forecast.InfoAsync(ctx, Id(ctx)));
        routes.MapDelete("/v1/series/{id}", forecast is null ? NoForecast : ctx => forecast.DeleteAsync(ctx, Id(ctx)));
        return app;
    }

    // The loaders place the weights on the server's device (ModelLoadOptions.Device), whose free memory bounds what loads.
    private static TextService LoadText(string dir, Mamba4.Tensors.Device device, ServerOptions options, ServerMetrics metrics)
    {
        var lm = LanguageModelFiles.Load(dir, options.Load with { Device = device });
        if (lm is not MambaLM mamba)
        {
            lm.AsModule.Dispose();
            throw new NotSupportedException($"{dir} holds a {lm.GetType().Name}: `mamba4 serve` batches Mamba models (their state has a fixed size)");
        }
        try
        {
            mamba.Eval();
            mamba.To(device);
            var tokenizer = LanguageModelFiles.LoadTokenizer(dir);
            if (tokenizer is not null && tokenizer.VocabSize > mamba.Config.VocabSize)
                throw new InvalidDataException($"{dir}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary has {mamba.Config.VocabSize}");
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
            return new TextService(mamba, tokenizer, name, options, metrics, dir);
        }
        catch
        {
            mamba.Dispose();
            throw;
        }
    }

    /// <summary>The recommender directory through the library's loader (the one `mamba4 rec` uses); the event API needs Mamba4Rec's recurrent state.</summary>
    private static RecService LoadRec(string dir, Mamba4.Tensors.Device device, ServerOptions options, ServerMetrics metrics)
    {
        var loaded = RecModels.Load(dir, option: "--rec", defaultKind: "mamba4rec", options: options.Load with { Device = device });
        var model = loaded.Module;
        UserStateStore? store = null;
        try
        {
            model.To(device);
            var version = ModelVersion.Of(new[] { Path.Combine(dir, "config.json") }.Concat(Mamba4.IO.ModelFiles.WeightFiles(dir)));
            store = new UserStateStore(options.StateDb ?? Path.Combine(dir, "user_states.sqlite"));
            return new RecService(loaded.Model, version, store, options, metrics, loaded.Model is Mamba4Rec ? null : loaded.MaxLen);
        }
        catch
        {
            store?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>A forecaster saved by `mamba4 forecast train` (its run folder or the model folder inside), and its series database.</summary>
    private static ForecastService LoadForecast(string dir, Mamba4.Tensors.Device device, ServerOptions options)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"--forecast: directory not found: {dir}");
        var modelDir = File.Exists(Path.Combine(dir, SavedForecaster.ConfigFile)) ? dir : Path.Combine(dir, "model");
        var saved = SavedForecaster.Load(modelDir, options.Load with { Device = device });
        SeriesStore? store = null;
        try
        {
            saved.Model.To(device);
            var version = ModelVersion.Of([Path.Combine(modelDir, SavedForecaster.ConfigFile), Path.Combine(modelDir, SavedForecaster.WeightsFile)]);
            store = new SeriesStore(options.SeriesDb ?? Path.Combine(modelDir, "series_states.sqlite"));
            return new ForecastService(saved, version, store, options);
        }
        catch
        {
            store?.Dispose();
            saved.Dispose();
            throw;
        }
    }
}
