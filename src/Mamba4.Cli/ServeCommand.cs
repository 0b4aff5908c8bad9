using System.CommandLine;
using Mamba4.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Mamba4.Cli;

internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "language model directory (HF Mamba, or written by `mamba4 lm train`)" };
        var rec = new Option<string?>("--rec") { Description = "Mamba4Rec model directory (config.json + model.safetensors)" };
        var stateDb = new Option<string?>("--state-db") { Description = "the users' states: a SQLite file (default: user_states.sqlite in the --rec directory), or postgres://user:password@host[:port]/database for several replicas on one PostgreSQL database" };
        var forecast = new Option<string?>("--forecast") { Description = "forecaster saved by `mamba4 forecast train` (its run folder or model folder)" };
        var seriesDb = new Option<string?>("--series-db") { Description = "the growing series: a SQLite file (default: series_states.sqlite in the forecaster's model folder), or a postgres:// URL as for --state-db" };
        var host = new Option<string>("--host") { Description = "address to bind (an IP, or localhost)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port)", DefaultValueFactory = _ => 8080 };
        var device = DeviceOption.Create();
        var maxStreams = new Option<int>("--max-streams") { Description = "completion streams decoded together (slots of the batched state)", DefaultValueFactory = _ => 32 };
        var maxQueue = new Option<int>("--max-queue") { Description = "streams that may wait for a slot; beyond, 429", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "largest max_tokens a completion may ask for", DefaultValueFactory = _ => 4096 };
        var maxPrompt = new Option<int>("--max-prompt-tokens") { Description = "longest prompt, in tokens (413 beyond)", DefaultValueFactory = _ => 8192 };
        var maxMessages = new Option<int>("--max-messages") { Description = "most messages a chat completion may hold (413 beyond)", DefaultValueFactory = _ => new ServerOptions().MaxMessages };
        var maxHistory = new Option<int>("--max-history") { Description = "longest history /v1/recommend takes (413 beyond)", DefaultValueFactory = _ => 8192 };
        var maxBytes = new Option<long>("--max-request-bytes") { Description = "largest request body (413 beyond)", DefaultValueFactory = _ => 1L << 20 };
        var timeout = new Option<double>("--timeout") { Description = "seconds a completion may take; past it the stream is cancelled and the client gets a 408 JSON error", DefaultValueFactory = _ => 600 };
        var quiet = new Option<bool>("--quiet") { Description = "no request log (errors are still logged)" };
        var apiKey = new Option<string?>("--api-key") { Description = $"require 'Authorization: Bearer KEY' on every request but GET /health and GET / (401 otherwise); default: the {ApiKeyVariable} environment variable" };
        var insecure = new Option<bool>("--insecure-no-auth") { Description = "serve a non-loopback --host without an API key (refused otherwise)" };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "host names (or IPs) requests may name in their Host header besides the bound address and localhost (421 otherwise); comma-separated or repeated; '*' = any. With --host 0.0.0.0, list the server's public names", AllowMultipleArgumentsPerToken = false };
        var cors = new Option<string[]>("--cors") { Description = "origins (e.g. https://app.example) whose pages may call the server from a browser; comma-separated or repeated; '*' = any. Default: no CORS headers", AllowMultipleArgumentsPerToken = false };

        var drain = new Option<double>("--drain") { Description = "on SIGTERM/SIGINT, seconds that running completions may take to finish (new ones get 503); then the rest are cancelled with a \"shutting down\" error event and the server exits 0", DefaultValueFactory = _ => new ServerOptions().DrainSeconds };
        var stallSeconds = new Option<double>("--stall-seconds") { Description = "a decoding loop with no progress this long while streams are active makes /health answer 503 (and mamba4_decoder_stalled 1)", DefaultValueFactory = _ => 30 };
        var idempotencyHours = new Option<double>("--idempotency-hours") { Description = "how long a write's Idempotency-Key (and its stored reply) is kept for retries", DefaultValueFactory = _ => 24 };
        var allowNonFinite = AllowNonFiniteOption.Create();
        var dtype = DTypeOption.Create();
        var cmd = new Command("serve", $$"""
            Serve a language model, a Mamba4Rec recommender and/or a forecaster over HTTP. Completions stream as
            server-sent events; all active streams advance together in one batched recurrent step
            (continuous batching); user states live in SQLite (or PostgreSQL: --state-db postgres://…) and survive restarts. With --device cuda the
            models and the batched state live on the GPU (user and series states move to it per request). Binds 127.0.0.1
            unless --host says otherwise. Stop with Ctrl+C (or SIGTERM): no new requests, running completions get
            --drain seconds to finish, the rest end with an error event, SQLite is flushed, exit code 0.

            Endpoints: POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize, /v1/recommend,
            /v1/users/{id}/events, /v1/forecast, /v1/series/{id}/values; GET /v1/users/{id}/recommendations?k=10,
            /v1/series/{id}/forecast, /v1/models, /health, /metrics

            Examples:
              mamba4 serve --model runs/lm-mamba/model
              mamba4 serve --model ./mamba-130m-hf --rec runs/rec/model --port 9000 --max-streams 64
              mamba4 serve --model ./mamba-130m-hf --device cuda --max-streams 128
              {{ApiKeyVariable}}="$KEY" mamba4 serve --model DIR --host 0.0.0.0 --allowed-hosts lm.example.org
              curl -N localhost:8080/v1/completions -H 'Content-Type: application/json' -d '{"prompt": "ROMEO:", "max_tokens": 50, "stream": true}'

            Access: the Host header must name the bound address, localhost or an --allowed-hosts entry (421: no DNS
            rebinding; a wildcard --host such as 0.0.0.0 is no name, so list the public ones, or '*' for any). POST
            bodies must be Content-Type: application/json (415). With --api-key (or {{ApiKeyVariable}}) every request
            but GET /health and the playground page needs 'Authorization: Bearer KEY' (401). A --host other than
            loopback (127.0.0.0/8, ::1, localhost) needs a key, or --insecure-no-auth. No CORS headers unless --cors.
            """);
        foreach (var o in new Option[] { model, rec, stateDb, forecast, seriesDb, host, port, device, maxStreams, maxQueue, maxTokens, maxPrompt, maxMessages, maxHistory, maxBytes, timeout, quiet, apiKey, insecure, allowedHosts, cors, allowNonFinite, dtype, drain, stallSeconds, idempotencyHours }) cmd.Options.Add(o);
        cmd.SetAction(async (parse, cancel) =>
        {
            DeviceOption.Use(parse, device);   // before loading anything: no usable GPU → the one-line reason
            var options = new ServerOptions
            {
                ModelDir = parse.GetValue(model), RecDir = parse.GetValue(rec), StateDb = parse.GetValue(stateDb),
                ForecastDir = parse.GetValue(forecast), SeriesDb = parse.GetValue(seriesDb),
                Host = parse.GetValue(host)!, Port = parse.GetValue(port), Device = parse.GetValue(device) ?? "cpu",
                MaxStreams = parse.GetValue(maxStreams), MaxQueue = parse.GetValue(maxQueue), MaxTokens = parse.GetValue(maxTokens),
                MaxPromptTokens = parse.GetValue(maxPrompt), MaxMessages = parse.GetValue(maxMessages), MaxHistory = parse.GetValue(maxHistory), MaxRequestBytes = parse.GetValue(maxBytes),
                RequestTimeoutSeconds = parse.GetValue(timeout),
                Log = !parse.GetValue(quiet),
                ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable(ApiKeyVariable), InsecureNoAuth = parse.GetValue(insecure),
                AllowedHosts = List(parse.GetValue(allowedHosts)), CorsOrigins = List(parse.GetValue(cors)),
                Load = AllowNonFiniteOption.LoadOptions(parse, allowNonFinite) with { WeightDType = DTypeOption.Get(parse, dtype) },   // the LM's; recommenders and forecasters load F32
                DrainSeconds = parse.GetValue(drain), StallSeconds = parse.GetValue(stallSeconds),
                IdempotencyKeyLifetime = parse.GetValue(idempotencyHours) is var h && double.IsFinite(h) && h > 0 && h <= 24 * 365
                    ? TimeSpan.FromHours(h) : throw new ArgumentException($"--idempotency-hours must be in (0, {24 * 365}], got {parse.GetValue(idempotencyHours)}"),
            };
            await using var app = MambaServer.Build(options);
            await app.StartAsync(CancellationToken.None);
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            var what = string.Join(", ", new[] { options.ModelDir is null ? null : $"model {options.ModelDir}", options.RecDir is null ? null : $"rec {options.RecDir}", options.ForecastDir is null ? null : $"forecast {options.ForecastDir}" }.OfType<string>());
            Console.WriteLine($"mamba4 serve: listening on {string.Join(", ", addresses)} ({what}; device {options.ResolveDevice()}; {(options.ApiKey is null ? "no API key" : "API key required")})");
            if (!options.IsLoopback && options.ApiKey is null) Console.Error.WriteLine($"warning: --insecure-no-auth: anyone who can reach {string.Join(", ", addresses)} can use this server");
            await app.WaitForShutdownAsync(cancel);   // SIGTERM/SIGINT: the host's console lifetime (their only handler) drains (--drain), then 0
            return 0;
        });
        return cmd;
    }

    /// <summary>The environment variable that holds the API key when --api-key is not given (kept out of `ps` and shell history).</summary>
    public const string ApiKeyVariable = "MAMBA4_API_KEY";

    /// <summary>The values of a repeatable option, each also split at commas.</summary>
    private static string[] List(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
}
