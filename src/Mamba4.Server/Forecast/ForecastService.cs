using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;
using Mamba4.Tasks.Forecasting;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server.Forecast;

public sealed class ForecastRequest
{
    /// <summary>Rows oldest first: each an array of one value per column (a plain number per row for one column).</summary>
    [JsonPropertyName("values")] public JsonElement? Values { get; set; }
    /// <summary>One timestamp per row ("yyyy-MM-dd HH:mm:ss" or ISO 8601); needed by models with time features.</summary>
    [JsonPropertyName("timestamps")] public string[]? Timestamps { get; set; }
    /// <summary>A streaming forecaster reads every row through its recurrent state (as `forecast predict --stream`); default: the last input-length rows.</summary>
    [JsonPropertyName("stream")] public bool? Stream { get; set; }
}

public sealed class SeriesRowsRequest
{
    [JsonPropertyName("values")] public JsonElement? Values { get; set; }
    [JsonPropertyName("timestamps")] public string[]? Timestamps { get; set; }
}

/// <summary>
/// Forecasting over a model saved by `mamba4 forecast train`: POST /v1/forecast (recent rows → the next horizon,
/// in original units, as `mamba4 forecast predict` computes it) and growing series — POST /v1/series/{id}/values
/// appends rows, GET /v1/series/{id}/forecast answers. A streaming forecaster (temporal Mamba, no RevIN) advances
/// the series' stored recurrent state by one O(1) step per row; a windowed one forecasts from the last
/// input-length stored rows. Rows and states live in SQLite and survive restarts; states are versioned by checkpoint.
/// </summary>
public sealed class ForecastService : IDisposable
{
    private readonly ServerOptions _options;
    private readonly SemaphoreSlim _lock = new(1, 1);

    public ForecastService(SavedForecaster saved, string version, SeriesStore store, ServerOptions options)
    {
        Saved = saved;
        Version = version;
        Store = store;
        _options = options;
    }

    public SavedForecaster Saved { get; }
    public string Version { get; }
    public SeriesStore Store { get; }
    /// <summary>Whether series advance a recurrent state (else they keep rows for a windowed forecast).</summary>
    public bool Streaming => Saved.CanStream;
    private int Columns => Saved.Columns.Count;

    /// <summary>The rows of a request: row-major values and timestamps, each checked (400 naming the row).</summary>
    private (double[] Values, DateTime[]? Timestamps) ParseRows(JsonElement? values, string[]? timestamps)
    {
        if (values is not { ValueKind: JsonValueKind.Array } e)
            throw ApiException.BadRequest($"values is required: an array of rows, each an array of {Columns} numbers ({string.Join(", ", Saved.Columns)})", "values");
        int rows = e.GetArrayLength(), n = Columns;
        if (rows == 0) throw ApiException.BadRequest("values is empty: send at least one row", "values");
        if (rows > _options.MaxHistory) throw ApiException.TooLarge($"values has {rows} rows; the limit is {_options.MaxHistory} (--max-history)", "values");
        var result = new double[rows * n];
        int r = 0;
        foreach (var row in e.EnumerateArray())
        {
            if (row.ValueKind == JsonValueKind.Number && n == 1) result[r] = Finite(row, $"values[{r}]");
            else if (row.ValueKind == JsonValueKind.Array && row.GetArrayLength() == n)
            {
                int c = 0;
                foreach (var x in row.EnumerateArray()) { result[r * n + c] = Finite(x, $"values[{r}][{c}]"); c++; }
            }
            else throw ApiException.BadRequest($"values[{r}] must be an array of {n} numbers ({string.Join(", ", Saved.Columns)}), got {Truncate(row.GetRawText())}", "values");
            r++;
        }
        DateTime[]? stamps = null;
        if (timestamps is not null)
        {
            if (timestamps.Length != rows) throw ApiException.BadRequest($"timestamps has {timestamps.Length} entries for {rows} rows", "timestamps");
            stamps = new DateTime[rows];
            for (int i = 0; i < rows; i++)
            {
                if (!DateTime.TryParse(timestamps[i], CultureInfo.InvariantCulture, DateTimeStyles.None, out stamps[i]))
                    throw ApiException.BadRequest($"timestamps[{i}] '{Truncate(timestamps[i])}' is not a date and time (e.g. 2016-07-01 00:00:00)", "timestamps");
                if (i > 0 && stamps[i] <= stamps[i - 1]) throw ApiException.BadRequest($"timestamps[{i}] {timestamps[i]} is not after timestamps[{i - 1}] {timestamps[i - 1]}", "timestamps");
            }
        }
        if (stamps is null && Saved.Config.TimeFeatures > 0)
            throw ApiException.BadRequest($"this model uses {Saved.Config.TimeFeatures} time features: send timestamps (one per row)", "timestamps");
        return (result, stamps);
    }

    private static double Finite(JsonElement x, string field)
    {
        if (x.ValueKind != JsonValueKind.Number || !x.TryGetDouble(out var v) || !double.IsFinite(v))
            throw ApiException.BadRequest($"{field} must be a finite number, got {Truncate(x.GetRawText())}", "values");
        return v;
    }

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "…";

    private TimeSeriesTable Table(string source, double[] values, DateTime[]? stamps) => new(source, Saved.Columns, values, stamps, Saved.DateColumn);

    private Dictionary<string, object?> Answer(Prediction p) => new()
    {
        ["columns"] = p.Columns,
        ["horizon"] = p.Steps,
        ["first_step"] = p.FirstIndex,
        ["timestamps"] = p.Timestamps?.Select(t => t.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)).ToArray(),
        ["values"] = Enumerable.Range(0, p.Steps).Select(s => Enumerable.Range(0, p.Columns.Count).Select(c => p[s, c]).ToArray()).ToArray(),
        ["model"] = Saved.Config.Model,
        ["model_version"] = Version,
    };

    /// <summary>POST /v1/forecast: the next horizon after the given rows (SavedForecaster.Forecast, as `forecast predict`).</summary>
    public async Task ForecastAsync(HttpContext ctx)
    {
        var r = await JsonBody.ReadAsync<ForecastRequest>(ctx, _options.MaxRequestBytes);
        var (values, stamps) = ParseRows(r.Values, r.Timestamps);
        bool stream = r.Stream ?? false;
        if (stream && !Streaming)
            throw ApiException.BadRequest($"stream {Saved.StreamRequirement}", "stream");
        int rows = values.Length / Columns;
        if (!stream && rows < Saved.Config.InputLength)
            throw ApiException.BadRequest($"values has {rows} rows; the model reads the last {Saved.Config.InputLength} (its input length)", "values");
        Prediction p;
        await _lock.WaitAsync(ctx.RequestAborted);
        try { p = Saved.Forecast(Table("request", values, stamps), stream); }
        finally { _lock.Release(); }
        await ctx.Response.WriteAsJsonAsync(Answer(p), JsonBody.Output);
    }

    private static string CheckSeries(string? id) => ApiException.CheckId(id, "series");

    /// <summary>POST /v1/series/{id}/values: appends rows (a streaming model: one recurrent step each) and commits before answering.</summary>
    public async Task AppendAsync(HttpContext ctx, string? id)
    {
        var series = CheckSeries(id);
        var r = await JsonBody.ReadAsync<SeriesRowsRequest>(ctx, _options.MaxRequestBytes);
        var (values, stamps) = ParseRows(r.Values, r.Timestamps);
        SeriesState next;
        await _lock.WaitAsync(ctx.RequestAborted);
        try
        {
            var current = Current(series);
            if (current is not null)
            {
                var (_, last) = Store.Rows(series, Columns, 1);
                if ((last is null) != (stamps is null))
                    throw ApiException.BadRequest(stamps is null ? $"series '{series}' has timestamps: send timestamps with its new rows" : $"series '{series}' has no timestamps: send its rows without", "timestamps");
                if (last is not null && stamps![0] <= last[0])
                    throw ApiException.BadRequest($"timestamps[0] {stamps[0]:yyyy-MM-dd HH:mm:ss} is not after the series' last row ({last[0]:yyyy-MM-dd HH:mm:ss})", "timestamps");
            }
            next = Advance(series, current, values, stamps);
            Store.Append(next, values, Columns, stamps);
        }
        finally { _lock.Release(); }
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["series"] = series, ["rows"] = next.Rows, ["added"] = values.Length / Columns, ["model_version"] = Version }, JsonBody.Output);
    }

    /// <summary>GET /v1/series/{id}/forecast: the next horizon after the stored rows.</summary>
    public async Task SeriesForecastAsync(HttpContext ctx, string? id)
    {
        var series = CheckSeries(id);
        foreach (var key in ctx.Request.Query.Keys) throw ApiException.BadRequest($"unknown query parameter '{key}'; this endpoint takes none", key);
        Prediction p;
        long rows;
        await _lock.WaitAsync(ctx.RequestAborted);
        try
        {
            var state = Current(series) ?? throw ApiException.NotFound($"unknown series '{series}': post rows to /v1/series/{series}/values first");
            rows = state.Rows;
            var (tail, stamps) = Store.Rows(series, Columns, Streaming ? 2 : Saved.Config.InputLength);
            if (Streaming)
            {
                using var stream = ((MambaForecaster)Saved.Model).Stream();
                stream.Import(state.State, state.Hidden, state.Rows);
                p = Saved.ToPrediction(Table(series, tail, stamps), stream.Forecast()) with { FirstIndex = state.Rows };
            }
            else
            {
                if (rows < Saved.Config.InputLength)
                    throw ApiException.BadRequest($"series '{series}' has {rows} rows; the model reads the last {Saved.Config.InputLength} (its input length): post more rows first", "id");
                p = Saved.Forecast(Table(series, tail, stamps)) with { FirstIndex = state.Rows };
            }
        }
        finally { _lock.Release(); }
        var answer = Answer(p);
        answer["series"] = series;
        answer["rows"] = rows;
        await ctx.Response.WriteAsJsonAsync(answer, JsonBody.Output);
    }

    /// <summary>GET /v1/series/{id}: how many rows are stored.</summary>
    public async Task InfoAsync(HttpContext ctx, string? id)
    {
        var series = CheckSeries(id);
        SeriesState state;
        await _lock.WaitAsync(ctx.RequestAborted);
        try { state = Current(series) ?? throw ApiException.NotFound($"unknown series '{series}'"); }
        finally { _lock.Release(); }
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["series"] = series, ["rows"] = state.Rows, ["model_version"] = state.ModelVersion, ["updated_at"] = state.UpdatedAt }, JsonBody.Output);
    }

    /// <summary>DELETE /v1/series/{id}: forgets the rows and the state.</summary>
    public async Task DeleteAsync(HttpContext ctx, string? id)
    {
        var series = CheckSeries(id);
        bool existed;
        await _lock.WaitAsync(ctx.RequestAborted);
        try { existed = Store.Delete(series); }
        finally { _lock.Release(); }
        if (!existed) throw ApiException.NotFound($"unknown series '{series}'");
        ctx.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>The series' state for this checkpoint: stored, or recomputed from its rows when another checkpoint wrote it. Null for an unknown series.</summary>
    private SeriesState? Current(string series)
    {
        var stored = Store.Get(series);
        if (stored is null) return null;
        if (stored.ModelVersion == Version) return stored;
        var (values, stamps) = Store.Rows(series, Columns);
        var recomputed = Advance(series, null, values, stamps);
        Store.Put(recomputed);
        return recomputed;
    }

    /// <summary>A streaming model: the state after <paramref name="values"/>, from <paramref name="from"/> (or a zero state); a windowed one only counts rows.</summary>
    private SeriesState Advance(string series, SeriesState? from, double[] values, DateTime[]? stamps)
    {
        int n = Columns, f = Saved.Config.TimeFeatures, rows = values.Length / n;
        long total = (from?.Rows ?? 0) + rows;
        string now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        if (!Streaming) return new SeriesState(series, Version, total, [], [], now);
        var table = Table(series, values, stamps);
        var z = Saved.Normalizer.Transform(table);
        var marks = Saved.Marks(table);
        using var stream = ((MambaForecaster)Saved.Model).Stream();
        if (from is not null) stream.Import(from.State, from.Hidden, from.Rows);
        for (int r = 0; r < rows; r++) stream.Observe(z.AsSpan(r * n, n), marks is null ? default : marks.AsSpan(r * f, f));
        var (state, hidden) = stream.Export();
        return new SeriesState(series, Version, total, state, hidden, now);
    }

    public void Dispose()
    {
        Store.Dispose();
        _lock.Dispose();
        Saved.Dispose();
    }
}
