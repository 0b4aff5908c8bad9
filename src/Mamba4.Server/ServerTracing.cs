using System.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server;

/// <summary>
/// The server's traces (System.Diagnostics.ActivitySource "Mamba4.Server", OpenTelemetry's semantic names): one span
/// per request, "METHOD route" with its status, and one per state-database transaction inside it. The OpenTelemetry
/// SDK exports them over OTLP where OTEL_EXPORTER_OTLP_ENDPOINT is set; any ActivityListener sees them too.
/// </summary>
public static class ServerTracing
{
    public const string SourceName = "Mamba4.Server";
    public static readonly ActivitySource Source = new(SourceName, typeof(ServerTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Names the request's span after its route and records the status (an error for 5xx).</summary>
    public static void EndRequest(Activity? activity, HttpContext ctx, string route)
    {
        if (activity is null) return;
        activity.DisplayName = $"{ctx.Request.Method} {route}";
        activity.SetTag("http.request.method", ctx.Request.Method);
        activity.SetTag("http.route", route);
        activity.SetTag("url.path", ctx.Request.Path.Value);
        activity.SetTag("http.response.status_code", ctx.Response.StatusCode);
        if (ctx.Response.StatusCode >= 500) activity.SetStatus(ActivityStatusCode.Error);
    }
}
