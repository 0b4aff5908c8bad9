using System.Globalization;
using System.Text;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// `mamba4 forecast predict`: the next horizon steps after the end of a series, in original units, as CSV; with
/// <see cref="ForecastPredictSettings.Follow"/>, a forecast block after each new row read from the input.
/// </summary>
public static class ForecastPrediction
{
    private const string TimestampFormat = "yyyy-MM-dd HH:mm:ss";

    /// <param name="input">new rows for follow mode (CSV without a header).</param>
    /// <param name="output">where the CSV goes when no output file is named.</param>
    /// <param name="log">status lines.</param>
    public static void Run(ForecastPredictSettings s, TextReader input, TextWriter output, TextWriter log)
    {
        s.Validate();
        var modelDir = File.Exists(Path.Combine(s.Run, SavedForecaster.ConfigFile)) ? s.Run : Path.Combine(s.Run, RunDirectory.ModelFolder);
        using var saved = SavedForecaster.Load(modelDir, s.Load with { Device = s.Device });
        if (s.Stream && !saved.CanStream) throw new ArgumentException($"{modelDir}: --stream {saved.StreamRequirement}");
        var table = saved.ReadSeries(s.Data, s.Fill, s.Run);
        void Write(TextWriter w)
        {
            if (!s.Follow) WriteCsv(w, saved.Forecast(table, s.Stream), saved.DateColumn, issuedAt: null);
            else Follow(saved, table, input, w);
        }
        if (s.OutputPath is null)
        {
            Write(output);
            return;
        }
        // a failed forecast leaves neither a partial --out nor its temporary file
        IO.AtomicFile.Write(s.OutputPath, stream =>
        {
            using var w = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
            Write(w);
        });
        log.WriteLine($"wrote {saved.Config.Horizon} steps × {saved.Columns.Count} columns to {s.OutputPath}");
    }

    /// <summary>
    /// The history primes the recurrent state; each input row is one state update and one forecast block, each row
    /// of the block prefixed with the time (or row number) it was issued at. Timestamps must keep increasing.
    /// </summary>
    private static void Follow(SavedForecaster saved, TimeSeriesTable history, TextReader input, TextWriter w)
    {
        var model = (MambaForecaster)saved.Model;
        int n = saved.Columns.Count, f = saved.Config.TimeFeatures;
        using var stream = model.Stream();
        var z = saved.Normalize(history);
        var marks = saved.Marks(history);
        for (int r = 0; r < history.Rows; r++) stream.Observe(z.AsSpan(r * n, n), marks is null ? default : marks.AsSpan(r * f, f));
        var stamps = history.Timestamps?.ToList();
        var rows = new List<double>(history.Values);
        var header = string.Join(",", history.DateColumn is null ? history.Columns : [history.DateColumn, .. history.Columns]);
        WriteCsv(w, saved.ToPrediction(history, stream.Forecast()), saved.DateColumn, issuedAt: Issued(history));
        w.Flush();
        string? line;
        int lineNo = 0;
        while ((line = input.ReadLine()) is not null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var one = TimeSeriesCsv.Parse(new StringReader(header + "\n" + line), $"stdin:{lineNo}",
                new TimeSeriesCsvOptions { Columns = saved.Columns, DateColumn = history.DateColumn, Fill = FillMethod.None });
            if (stamps is not null && stamps.Count > 0 && one.Timestamps![0] <= stamps[^1])
                throw new InvalidDataException($"stdin:{lineNo}: {one.Timestamps[0]:yyyy-MM-dd HH:mm:ss} does not come after the previous row's {stamps[^1]:yyyy-MM-dd HH:mm:ss}");
            stamps?.Add(one.Timestamps![0]);
            rows.AddRange(one.Values);
            stream.Observe(saved.Normalize(one), saved.Marks(one));
            // The grown series is copied for each row (its last timestamp and row count date the forecast): O(history) per row.
            var grown = new TimeSeriesTable(history.Source, history.Columns, rows.ToArray(), stamps?.ToArray(), history.DateColumn);
            WriteCsv(w, saved.ToPrediction(grown, stream.Forecast()), saved.DateColumn, issuedAt: Issued(grown), header: false);
            w.Flush();
        }
    }

    private static string Issued(TimeSeriesTable t) =>
        t.Timestamps is { Length: > 0 } ts ? ts[^1].ToString(TimestampFormat, CultureInfo.InvariantCulture) : (t.Rows - 1).ToString(CultureInfo.InvariantCulture);

    private static void WriteCsv(TextWriter w, Prediction p, string? dateColumn, string? issuedAt, bool header = true)
    {
        if (header)
            w.WriteLine(string.Join(",", (issuedAt is null ? [] : new[] { "issued_at" }).Append(p.Timestamps is null ? "step" : dateColumn ?? "date").Concat(p.Columns)));
        for (int s = 0; s < p.Steps; s++)
        {
            var sb = new StringBuilder();
            if (issuedAt is not null) sb.Append(issuedAt).Append(',');
            sb.Append(p.Timestamps is { } ts ? ts[s].ToString(TimestampFormat, CultureInfo.InvariantCulture) : (p.FirstIndex + s).ToString(CultureInfo.InvariantCulture));
            for (int k = 0; k < p.Columns.Count; k++) sb.Append(',').Append(p[s, k].ToString("G7", CultureInfo.InvariantCulture));
            w.WriteLine(sb.ToString());
        }
    }
}
