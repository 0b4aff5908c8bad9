using Mamba4.Data.TimeSeries;

namespace Mamba4.Tests;

/// <summary>The forecasting protocol's data side: reader, splits, normaliser, windows, metrics.</summary>
public class ForecastDataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-fdata-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static TimeSeriesTable Parse(string text, TimeSeriesCsvOptions? o = null) => TimeSeriesCsv.Parse(new StringReader(text), "t.csv", o);

    // ---- splits ----

    [Fact]
    public void EttHourSplitHasTheLiteraturesExactRowRanges()
    {
        var s = Splits.Ett(17420, inputLength: 96, horizon: 96);
        Assert.Equal(new RowRange(0, 8640), s.Train);                 // 12·30·24
        Assert.Equal(new RowRange(8640 - 96, 11520), s.Validation);   // 12·30·24 − L … 16·30·24
        Assert.Equal(new RowRange(11520 - 96, 14400), s.Test);        // 16·30·24 − L … 20·30·24
        Assert.Equal(s.Train, s.Fit);
        Assert.Equal(8449, DataSplits.WindowCount(s.Train, 96, 96));  // len − L − H + 1, as the reference loaders
        Assert.Equal(2785, DataSplits.WindowCount(s.Validation, 96, 96));
        Assert.Equal(2785, DataSplits.WindowCount(s.Test, 96, 96));
        Assert.Equal(2161, DataSplits.WindowCount(Splits.Ett(17420, 96, 720).Test, 96, 720));
    }

    [Fact]
    public void EttMinuteSplitIsFourTimesLonger()
    {
        var s = Splits.Ett(69680, inputLength: 96, horizon: 96, rowsPerHour: 4);
        Assert.Equal(new RowRange(0, 34560), s.Train);
        Assert.Equal(new RowRange(34560 - 96, 46080), s.Validation);
        Assert.Equal(new RowRange(46080 - 96, 57600), s.Test);
    }

    [Fact]
    public void RatioSplitFollowsTheCustomDatasetLoader()
    {
        // n = 1000: n_train = 700, n_test = 200, n_val = 100.
        var s = Splits.Ratio(1000, inputLength: 10, horizon: 5);
        Assert.Equal(new RowRange(0, 700), s.Train);
        Assert.Equal(new RowRange(690, 800), s.Validation);
        Assert.Equal(new RowRange(790, 1000), s.Test);
        // Truncation as int(n · ratio): n = 1001 → 700 / 200 / 101.
        var t = Splits.Ratio(1001, 10, 5);
        Assert.Equal(new RowRange(0, 700), t.Train);
        Assert.Equal(new RowRange(690, 801), t.Validation);
        Assert.Equal(new RowRange(791, 1001), t.Test);
        var custom = Splits.Resolve("ratio:0.6,0.2,0.2", "x.csv", 1000, 10, 5);
        Assert.Equal(new RowRange(0, 600), custom.Train);
        Assert.Equal(new RowRange(590, 800), custom.Validation);
        Assert.Equal(new RowRange(790, 1000), custom.Test);
    }

    [Fact]
    public void AutoSplitChoosesByFileNameAndRefusesWhatDoesNotFit()
    {
        Assert.Equal("ett-hour", Splits.Resolve("auto", "/data/ETTh1.csv", 17420, 96, 96).Description);
        Assert.Equal("ett-minute", Splits.Resolve("auto", "ETTm2.csv", 69680, 96, 96).Description);
        Assert.StartsWith("ratio 0.7/0.1/0.2", Splits.Resolve("auto", "weather.csv", 5000, 96, 96).Description);
        Assert.Contains("needs 14400 rows", Assert.Throws<InvalidDataException>(() => Splits.Ett(10000, 96, 96, source: "ETTh1.csv")).Message);
        var e = Assert.Throws<InvalidDataException>(() => Splits.Ratio(500, 96, 96, source: "small.csv"));
        Assert.Contains("small.csv: the validation split", e.Message);
        Assert.Contains("too few for one window of input 96 + horizon 96", e.Message);
        Assert.Throws<ArgumentException>(() => Splits.Resolve("ratio:0.5,0.2", "x.csv", 1000, 10, 5));
        Assert.Throws<ArgumentException>(() => Splits.Resolve("weekly", "x.csv", 1000, 10, 5));
    }

    // ---- normaliser, windows, metrics ----

    [Fact]
    public void NormalizerUsesTrainingRowsOnlyWithPopulationStd()
    {
        var table = Parse("a,b,c\n1,10,5\n2,10,5\n3,10,5\n4,10,5\n100,-50,7\n");
        var z = Standardizer.Fit(table, new RowRange(0, 4));
        Assert.Equal([2.5, 10, 5], z.Mean);
        Assert.Equal(Math.Sqrt(1.25), z.Std[0], 12);   // ((1.5² + 0.5²)·2)/4 = 1.25, divided by n, not n − 1
        Assert.Equal(1, z.Std[1]);                      // a constant column keeps std 1
        Assert.Equal(1, z.Std[2]);
        var t = z.Transform(table);
        Assert.Equal((float)((1 - 2.5) / Math.Sqrt(1.25)), t[0]);
        Assert.Equal((float)((100 - 2.5) / Math.Sqrt(1.25)), t[12]);
        Assert.Equal(-60f, t[13]);
        Assert.Equal(100, z.Denormalize(z.Normalize(100, 0), 0), 10);
        var back = Standardizer.FromJson(z.ToJson(), "x");
        Assert.Equal(z.Mean, back.Mean);
        Assert.Equal(z.Std, back.Std);
    }

    [Fact]
    public void WindowsCoverEveryStartWithStrideOne()
    {
        // 2 variables; value = 10·row + column.
        int rows = 20;
        var z = new float[rows * 2];
        for (int r = 0; r < rows; r++) { z[2 * r] = 10 * r; z[2 * r + 1] = 10 * r + 1; }
        var w = new WindowSet(z, 2, null, 0, new RowRange(5, 20), inputLength: 4, horizon: 3);
        Assert.Equal(15 - 4 - 3 + 1, w.Count);
        var b = w.Batch([0, w.Count - 1]);
        Assert.Equal([50, 51, 60, 61, 70, 71, 80, 81], b.Inputs[..8]);
        Assert.Equal([90, 91, 100, 101, 110, 111], b.Targets![..6]);
        Assert.Equal(130f, b.Inputs[8]);                     // last window starts at row 13
        Assert.Equal([170, 171, 180, 181, 190, 191], b.Targets![6..]);  // and ends on the range's last row
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Batch([w.Count]));
    }

    [Fact]
    public void MetricsMatchHandComputedValues()
    {
        var m = new ForecastMetrics();
        m.Add([1f, 2f, 3f], [1.5f, 2f, 1f]);     // errors −0.5, 0, 2
        m.Add([0f], [-1f]);                      // error 1
        Assert.Equal(4, m.Count);
        Assert.Equal((0.25 + 0 + 4 + 1) / 4, m.Mse, 12);
        Assert.Equal((0.5 + 0 + 2 + 1) / 4, m.Mae, 12);
        Assert.True(double.IsNaN(new ForecastMetrics().Mse));
    }

    [Fact]
    public void TimeFeaturesAreScaledCalendarPositions()
    {
        var f = new float[4];
        TimeFeatures.Encode(new DateTime(2016, 7, 4, 23, 0, 0), 4, f);   // a Monday, 23:00, 4th, day 186
        Assert.Equal([0.5f, -0.5f, 3 / 30f - 0.5f, 185 / 365f - 0.5f], f);
        Assert.Equal(4, TimeFeatures.Count(TimeSpan.FromHours(1)));
        Assert.Equal(5, TimeFeatures.Count(TimeSpan.FromMinutes(15)));
        Assert.Equal(3, TimeFeatures.Count(TimeSpan.FromDays(1)));
        Assert.Equal(0, TimeFeatures.Count(null));
    }

    // ---- reader ----

    [Fact]
    public void ReadsEtth1()
    {
        var t = TimeSeriesCsv.Read(Path.Combine(Fixtures.SharedDir, "data", "ett", "ETTh1.csv"));
        Assert.Equal(17420, t.Rows);
        Assert.Equal(["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"], t.Columns);
        Assert.Equal("date", t.DateColumn);
        Assert.Equal(new DateTime(2016, 7, 1, 0, 0, 0), t.Timestamps![0]);
        Assert.Equal(new DateTime(2018, 6, 26, 19, 0, 0), t.Timestamps[^1]);
        Assert.Equal(TimeSpan.FromHours(1), t.Step);
        Assert.Equal(30.5310001373291, t[0, 6], 12);
        var ot = TimeSeriesCsv.Read(Path.Combine(Fixtures.SharedDir, "data", "ett", "ETTh1.csv"), new TimeSeriesCsvOptions { Columns = ["OT", "HULL"] });
        Assert.Equal(["OT", "HULL"], ot.Columns);
        Assert.Equal(2.009000062942505, ot[0, 1], 12);
    }

    [Fact]
    public void ReaderHandlesQuotesSeparatorsAndBlankLines()
    {
        var t = Parse("\"date\";\"x\";\"note, with comma\"\r\n2020-01-01 00:00;1.5;\"a \"\"b\"\"\"\r\n\r\n2020-01-01 01:00;-2e-1;c\r\n",
            new TimeSeriesCsvOptions { Columns = ["x"] });
        Assert.Equal(2, t.Rows);
        Assert.Equal([1.5, -0.2], t.Values);
        Assert.Equal(new DateTime(2020, 1, 1, 1, 0, 0), t.Timestamps![1]);
        var noDate = Parse("a,b\n1,2\n3,4\n");
        Assert.Null(noDate.Timestamps);
        Assert.Equal(["a", "b"], noDate.Columns);
    }

    [Theory]
    [InlineData("date,a,b\n2020-01-01,1,2\n2020-01-02,x1,3\n", null, "t.csv:3: column 'a': 'x1' is not a number")]
    [InlineData("date,a,b\n2020-01-01,1,2\n2020-01-02,,3\n", null, "t.csv:3: column 'a' has no value; pass --fill")]
    [InlineData("date,a,b\n2020-01-01,1,NaN\n", null, "t.csv:2: column 'b' has no value ('NaN')")]
    [InlineData("date,a,b\n2020-01-01,1,2\n2020-01-02,3\n", null, "t.csv:3: expected 3 fields as in the header, found 2")]
    [InlineData("date,a,b\n2020-01-01,1,2\nyesterday,3,4\n", null, "t.csv:3: column 'date': 'yesterday' is not a date/time")]
    [InlineData("date,a,b\n2020-01-02,1,2\n2020-01-01,3,4\n", null, "t.csv:3: column 'date': 2020-01-01 00:00:00 does not come after")]
    [InlineData("date,a,b\n2020-01-01,1,2\n", "c", "t.csv: no column 'c'; the header has: date, a, b")]
    [InlineData("date,a,b\n2020-01-01,1,1e999\n", null, "t.csv:2: column 'b': '1e999' is not a finite number")]
    [InlineData("", null, "t.csv: the file is empty")]
    [InlineData("date,a\n", null, "t.csv: no data rows after the header")]
    [InlineData("date,a,a\n2020-01-01,1,2\n", null, "t.csv:1: the header names column 'a' twice")]
    [InlineData("date,a\n2020-01-01,\"1\n", null, "t.csv:2: a quoted field is not closed")]
    [InlineData("date,a\n2020-01-01,\"1\"x\n", null, "t.csv:2: text after a closing quote in field 2")]
    public void ReaderErrorsNameFileLineAndColumn(string text, string? column, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => Parse(text, new TimeSeriesCsvOptions { Columns = column is null ? null : [column] }));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingFileAndMissingDateColumnAreReported()
    {
        var e = Assert.Throws<FileNotFoundException>(() => TimeSeriesCsv.Read(Path.Combine(_dir, "nope.csv")));
        Assert.Contains("nope.csv", e.Message);
        var path = Write("d.csv", "when,a\n2020-01-01,1\n");
        Assert.Contains("d.csv: no date column 'date'", Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(path, new TimeSeriesCsvOptions { DateColumn = "date" })).Message);
        Assert.Equal(new DateTime(2020, 1, 1), TimeSeriesCsv.Read(path, new TimeSeriesCsvOptions { DateColumn = "when" }).Timestamps![0]);
    }

    [Fact]
    public void FillMethodsCloseGaps()
    {
        const string text = "a,b\n,1\n2,\n,\n8,7\n,9\n";
        double[] Column(FillMethod f, int c) { var t = Parse(text, new TimeSeriesCsvOptions { Fill = f }); return Enumerable.Range(0, t.Rows).Select(r => t[r, c]).ToArray(); }
        Assert.Equal([2, 2, 2, 8, 8], Column(FillMethod.Forward, 0));   // a leading gap takes the first observed value
        Assert.Equal([1, 1, 1, 7, 9], Column(FillMethod.Forward, 1));
        Assert.Equal([2, 2, 5, 8, 8], Column(FillMethod.Linear, 0));
        Assert.Equal([1, 3, 5, 7, 9], Column(FillMethod.Linear, 1));
        Assert.Equal([0, 2, 0, 8, 0], Column(FillMethod.Zero, 0));
        Assert.Contains("column 'a' has no values at all", Assert.Throws<InvalidDataException>(() => Parse("a,b\n,1\nNA,2\n", new TimeSeriesCsvOptions { Fill = FillMethod.Linear })).Message);
        Assert.Equal(FillMethod.Linear, TimeSeriesCsvOptions.ParseFill("linear"));
        Assert.Equal(FillMethod.Forward, TimeSeriesCsvOptions.ParseFill("ffill"));
        Assert.Throws<ArgumentException>(() => TimeSeriesCsvOptions.ParseFill("mean"));
    }
}
