namespace Mamba4.Server;

/// <summary>What `mamba4 serve` serves and its limits.</summary>
public sealed record ServerOptions
{
    /// <summary>A language-model directory (HF Mamba, or one written by `mamba4 lm train`); null = no text endpoints.</summary>
    public string? ModelDir { get; init; }
    /// <summary>A Mamba4Rec directory; null = no recommendation endpoints.</summary>
    public string? RecDir { get; init; }
    /// <summary>SQLite file of the user states; default user_states.sqlite in the Mamba4Rec directory.</summary>
    public string? StateDb { get; init; }
    /// <summary>A forecaster saved by `mamba4 forecast train` (run folder or its model folder); null = no forecasting endpoints.</summary>
    public string? ForecastDir { get; init; }
    /// <summary>SQLite file of the growing series; default series_states.sqlite in the forecaster's model folder.</summary>
    public string? SeriesDb { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8080;
    /// <summary>Where the models and the batched decoding state live: cpu, cuda (GPU 0) or cuda:N.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Slots of the batched decoding state: streams decoded together.</summary>
    public int MaxStreams { get; init; } = 32;
    /// <summary>Streams that may wait for a slot; beyond, 429.</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>Largest max_tokens a request may ask for.</summary>
    public int MaxTokens { get; init; } = 4096;
    public int MaxPromptTokens { get; init; } = 8192;
    /// <summary>Most messages a /v1/chat/completions request may hold (413 beyond).</summary>
    public int MaxMessages { get; init; } = 256;
    /// <summary>Largest history /v1/recommend accepts.</summary>
    public int MaxHistory { get; init; } = 8192;
    public long MaxRequestBytes { get; init; } = 1 << 20;
    /// <summary>Longest a completion may take, from arrival to its last token (seconds); past it the stream is cancelled and the client gets a 408 JSON error (an error event once streaming).</summary>
    public double RequestTimeoutSeconds { get; init; } = 600;
    /// <summary>How long the response of a request with an Idempotency-Key is kept for replay; older keys are forgotten (and may be used again).</summary>
    public TimeSpan IdempotencyKeyLifetime { get; init; } = TimeSpan.FromHours(24);
    /// <summary>The clock that dates idempotency keys (tests pass their own).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
    /// <summary>Log each request (structured, one line) to the console.</summary>
    public bool Log { get; init; } = true;
    /// <summary>When set, every request but GET /health and GET / needs <c>Authorization: Bearer ApiKey</c> (else 401).</summary>
    public string? ApiKey { get; init; }
    /// <summary>Serve a non-loopback address without an API key (refused otherwise).</summary>
    public bool InsecureNoAuth { get; init; }
    /// <summary>Host names (or IPs) that requests may name in their Host header besides the bound address and localhost; "*" = any.</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>Origins (scheme://host[:port]) whose pages may call the server from a browser (CORS); "*" = any. None = no CORS headers.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>How the models are loaded (--allow-nonfinite).</summary>
    public IO.ModelLoadOptions Load { get; init; } = IO.ModelLoadOptions.Default;
    /// <summary>On SIGTERM/SIGINT: seconds that accepted completions may go on before the rest are cancelled (their clients get a "shutting down" error); new ones get 503 meanwhile.</summary>
    public double DrainSeconds { get; init; } = 8;
    /// <summary>A decoding loop that makes no progress this long while it has streams turns /health into 503 (mamba4_decoder_stalled 1).</summary>
    public double StallSeconds { get; init; } = 30;

    public void Validate()
    {
        if (ModelDir is null && RecDir is null && ForecastDir is null)
            throw new ArgumentException("nothing to serve: give --model (a language model directory), --rec (a Mamba4Rec directory) and/or --forecast (a forecaster saved by `mamba4 forecast train`)");
        if (Host != "localhost" && !System.Net.IPAddress.TryParse(Host, out _))
            throw new ArgumentException($"--host must be an IP address or localhost, got '{Host}'");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be in [0, 65535], got {Port}");
        if (MaxStreams < 1 || MaxStreams > 4096) throw new ArgumentException($"--max-streams must be in [1, 4096], got {MaxStreams}");
        if (MaxQueue < 0) throw new ArgumentException($"--max-queue must be ≥ 0, got {MaxQueue}");
        if (MaxTokens < 1) throw new ArgumentException($"--max-tokens must be ≥ 1, got {MaxTokens}");
        if (MaxPromptTokens < 1) throw new ArgumentException($"--max-prompt-tokens must be ≥ 1, got {MaxPromptTokens}");
        if (MaxMessages < 1 || MaxMessages > 1_000_000) throw new ArgumentException($"--max-messages must be in [1, 1000000], got {MaxMessages}");
        if (MaxHistory < 1) throw new ArgumentException($"--max-history must be ≥ 1, got {MaxHistory}");
        if (!(RequestTimeoutSeconds > 0 && RequestTimeoutSeconds <= 86400)) throw new ArgumentException($"--timeout must be in (0, 86400] seconds, got {RequestTimeoutSeconds}");
        if (!(IdempotencyKeyLifetime > TimeSpan.Zero && IdempotencyKeyLifetime <= TimeSpan.FromDays(365))) throw new ArgumentException($"--idempotency-hours: the key lifetime must be in (0, 365 days], got {IdempotencyKeyLifetime}");
        if (MaxRequestBytes < 64) throw new ArgumentException($"--max-request-bytes must be ≥ 64, got {MaxRequestBytes}");
        ValidateAccess();
        if (!(DrainSeconds >= 0 && DrainSeconds <= 3600)) throw new ArgumentException($"--drain must be in [0, 3600] seconds, got {DrainSeconds}");
        if (!(StallSeconds > 0 && StallSeconds <= 86400)) throw new ArgumentException($"--stall-seconds must be in (0, 86400], got {StallSeconds}");
        _ = ResolveDevice();
    }

    /// <summary>127.0.0.0/8, ::1 and localhost; a wildcard (0.0.0.0, ::) or any other address is reachable from elsewhere.</summary>
    public bool IsLoopback => Host == "localhost" || (System.Net.IPAddress.TryParse(Host, out var ip) && System.Net.IPAddress.IsLoopback(ip));

    private void ValidateAccess()
    {
        if (ApiKey is { } key)
        {
            if (key.Length is 0 or > 1024) throw new ArgumentException($"--api-key (or MAMBA4_API_KEY) must hold 1 to 1024 characters, got {key.Length}");
            if (!key.All(c => c is > ' ' and <= '~'))
                throw new ArgumentException("--api-key (or MAMBA4_API_KEY) must be printable ASCII without spaces: it travels in the Authorization header");
        }
        if (!IsLoopback && ApiKey is null && !InsecureNoAuth)
            throw new ArgumentException($"--host {Host} is reachable from other machines and no API key is set: give --api-key KEY (or MAMBA4_API_KEY), or --insecure-no-auth to serve it to anyone");
        foreach (var h in AllowedHosts)
            if (h != "*" && Uri.CheckHostName(h) is not (UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6))
                throw new ArgumentException($"--allowed-hosts takes host names or IP addresses without scheme or port, or '*', got '{h}'");
        foreach (var o in CorsOrigins)
            if (o != "*" && !(Uri.TryCreate(o, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && string.Equals(o, uri.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException($"--cors takes origins like https://example.com or http://localhost:3000 (scheme://host[:port], no path), or '*', got '{o}'");
    }

    /// <summary>The device of <see cref="Device"/>: ArgumentException when malformed, NotSupportedException (with the reason) when CUDA cannot be used.</summary>
    public Tensors.Device ResolveDevice() => Backends.Backend.ResolveDeviceOption(Device);
}
