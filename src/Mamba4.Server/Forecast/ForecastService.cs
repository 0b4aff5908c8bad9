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
    private readonly IdempotencyKeys _keys;
    private readonly SemaphoreSlim _lock = new(1, 1);

    public ForecastService(SavedForecaster saved, string version, SeriesStore store, ServerOptions options)
    {
        Saved = saved;
        Version = version;
        Store = store;
        _options = options;
        _keys = new IdempotencyKeys(options);
    }

    public SavedForecaster Saved { get; }
    public string Version { get; }
    public SeriesStore Store { get; }
    /// <summary>Whether series advance a recurrent state (else they keep rows for a windowed forecast).</summary>
    public bool Streaming => Saved.CanStream;
    private int Columns => Saved.Columns.Count;

    /// <summary>The rows of a request: row-major values and timestamps, each checked (400 naming the row; a value the model cannot read, also its column).</summary>
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
            if (row.ValueKind == JsonValueKind.Number && n == 1) result[r] = Value(row, $"values[{r}]", 0);
            else if (row.ValueKind == JsonValueKind.Array && row.GetArrayLength() == n)
            {
                int c = 0;
                foreach (var x in row.EnumerateArray()) { result[r * n + c] = Value(x, $"values[{r}][{c}]", c); c++; }
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

    /// <summary>A value of column <paramref name="column"/>: a finite number within the model's bound (<see cref="SavedForecaster.MaxAbsNormalized"/>).</summary>
    private double Value(JsonElement x, string field, int column)
    {
        if (x.ValueKind != JsonValueKind.Number || !x.TryGetDouble(out var v) || !double.IsFinite(v))
            throw ApiException.BadRequest($"{field} must be a finite number, got {Truncate(x.GetRawText())}", "values");
        if (Saved.ValueProblem(v, column) is { } problem)
            throw ApiException.BadRequest($"{field} (column '{Saved.Columns[column]}'): {problem}", "values");
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
        catch (InvalidDataException e) { throw new ApiException(422, e.Message, "values", "non_finite_forecast"); }
        finally { _lock.Release(); }
        await ctx.Response.WriteAsJsonAsync(Answer(p), JsonBody.Output);
    }

    private static string CheckSeries(string? id) => ApiException.CheckId(id, "series");

    /// <summary>
    /// POST /v1/series/{id}/values: appends rows (a streaming model: one recurrent step each) and commits before answering;
    /// with an Idempotency-Key, a retry gets the first answer and appends nothing.
    /// </summary>
    public async Task AppendAsync(HttpContext ctx, string? id)
    {
        var series = CheckSeries(id);
        var body = await JsonBody.ReadBytesAsync(ctx, _options.MaxRequestBytes);
        var idempotent = IdempotentRequest.Of(ctx, body);
        var r = JsonBody.Parse<SeriesRowsRequest>(body);
        var (values, stamps) = ParseRows(r.Values, r.Timestamps);
        StoredResponse? replay;
        byte[] answer = [];
        await _lock.WaitAsync(ctx.RequestAborted);
        try
        {
            (replay, answer) = Store.Locked(series, () =>
            {
                var stored = _keys.Replay(Store.Db, idempotent);
                return (stored, stored is null ? Append(series, values, stamps, idempotent) : []);
            });
        }
        finally { _lock.Release(); }
        await IdempotencyKeys.WriteAsync(ctx, replay, answer);
    }

    /// <summary>Under the lock: checks the rows against the series, advances its state and commits rows, state and answer in one transaction; the answer.</summary>
    private byte[] Append(string series, double[] values, DateTime[]? stamps, IdempotentRequest? idempotent)
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
        var (next, badRow) = Advance(series, current, values, stamps);
        if (badRow >= 0)
            throw new ApiException(422, $"values[{badRow}]: the series' state would become non-finite after this row (the model's float32 state overflows on these values); nothing was stored", "values", "non_finite_state");
        var answer = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["series"] = series, ["rows"] = next.Rows, ["added"] = values.Length / Columns, ["model_version"] = Version }, JsonBody.Output);
        Store.Append(next, values, Columns, stamps, () => _keys.Remember(Store.Db, idempotent, StatusCodes.Status200OK, answer));
        return answer;
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
            var (state, tail, stamps) = Store.Locked(series, () =>
            {
                var current = Current(series) ?? throw ApiException.NotFound($"unknown series '{series}': post rows to /v1/series/{series}/values first");
                var (v, t) = Store.Rows(series, Columns, Streaming ? 2 : Saved.Config.InputLength);
                return (current, v, t);
            });
            rows = state.Rows;
            if (!Streaming && rows < Saved.Config.InputLength)
                throw ApiException.BadRequest($"series '{series}' has {rows} rows; the model reads the last {Saved.Config.InputLength} (its input length): post more rows first", "id");
            try
            {
                if (Streaming)
                {
                    using var stream = Open(state);
                    p = Saved.ToPrediction(Table(series, tail, stamps), stream.Forecast()) with { FirstIndex = state.Rows };
                }
                else p = Saved.Forecast(Table(series, tail, stamps)) with { FirstIndex = state.Rows };
            }
            catch (InvalidDataException e) { throw Unusable(series, e.Message); }
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
        try { state = Store.Locked(series, () => Current(series)) ?? throw ApiException.NotFound($"unknown series '{series}'"); }
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

    /// <summary>
    /// The series' state for this checkpoint: stored, or recomputed from its rows when another checkpoint wrote it. Null for
    /// an unknown series; 409 for one whose state is not finite (stored by an older server that took any finite value).
    /// </summary>
    private SeriesState? Current(string series)
    {
        var stored = Store.Get(series);
        if (stored is null) return null;
        if (stored.ModelVersion == Version) return IsFinite(stored) ? stored : throw Unusable(series, "its stored state is not finite");
        var (values, stamps) = Store.Rows(series, Columns);
        SeriesState recomputed;
        int badRow;
        try { (recomputed, badRow) = Advance(series, null, values, stamps); }
        catch (InvalidDataException e) { throw Unusable(series, e.Message); }
        if (badRow >= 0) throw Unusable(series, $"its state becomes non-finite at stored row {badRow}");
        Store.Put(recomputed);
        return recomputed;
    }

    private static ApiException Unusable(string series, string why) => new(409,
        $"series '{series}' is unusable: {why}; DELETE /v1/series/{series} and post its rows again", "id", "unusable_series");

    private static bool IsFinite(SeriesState s) => Array.TrueForAll(s.State, float.IsFinite) && Array.TrueForAll(s.Hidden, float.IsFinite);

    /// <summary>
    /// A streaming model: the state after <paramref name="values"/>, from <paramref name="from"/> (or a zero state), and the
    /// first row after which it is not finite (−1: it is); a windowed one only counts rows.
    /// </summary>
    private (SeriesState State, int FirstNonFiniteRow) Advance(string series, SeriesState? from, double[] values, DateTime[]? stamps)
    {
        int rows = values.Length / Columns;
        long total = (from?.Rows ?? 0) + rows;
        string now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        if (!Streaming) return (new SeriesState(series, Version, total, [], [], now), -1);
        var table = Table(series, values, stamps);
        var z = Saved.Normalize(table);
        var marks = Saved.Marks(table);
        using var stream = Open(from);
        for (int r = 0; r < rows; r++) Observe(stream, z, marks, r);
        var (state, hidden) = stream.Export();
        var next = new SeriesState(series, Version, total, state, hidden, now);
        return (next, IsFinite(next) ? -1 : FirstNonFiniteRow(from, z, marks, rows));
    }

    /// <summary>
    /// The row to blame once the state after all rows is not finite (the rows replayed one at a time): the first after which
    /// the recurrent state is not (it stays so), else the last (only its hidden vector, which the next row replaces, is not).
    /// </summary>
    private int FirstNonFiniteRow(SeriesState? from, float[] z, float[]? marks, int rows)
    {
        using var stream = Open(from);
        for (int r = 0; r < rows - 1; r++)
        {
            Observe(stream, z, marks, r);
            if (!Array.TrueForAll(stream.Export().State, float.IsFinite)) return r;
        }
        return rows - 1;
    }

    /// <summary>A stream of the model, continuing <paramref name="from"/> (or from a zero state).</summary>
    private ForecastStream Open(SeriesState? from)
    {
        var stream = ((MambaForecaster)Saved.Model).Stream();
        if (from is not null) stream.Import(from.State, from.Hidden, from.Rows);
        return stream;
    }

    private void Observe(ForecastStream stream, float[] z, float[]? marks, int row)
    {
        int n = Columns, f = Saved.Config.TimeFeatures;
        stream.Observe(z.AsSpan(row * n, n), marks is null ? default : marks.AsSpan(row * f, f));
    }

    public void Dispose()
    {
        Store.Dispose();
        _lock.Dispose();
        Saved.Dispose();
    }
}
