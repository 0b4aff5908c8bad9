using System.Globalization;
using Mamba4.Models;
using Mamba4.Tasks.Forecasting;

namespace Mamba4.Tests;

/// <summary>The forecasting runs as a library: settings records, the comparison grid, follow mode on a reader and a writer.</summary>
public class ForecastTasksTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-ftasks-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TrainingSettingsLeftNullTakeTheModelKindsDefaults()
    {
        var s = new ForecastTrainSettings { Model = "transformer", Epochs = 5, ClipNorm = 0.5, Seed = 7 };
        Assert.Equal(ForecastDefaults.Training("transformer") with { Epochs = 5, ClipNorm = 0.5, Seed = 7 }, s.Training());
    }

    [Fact]
    public void BadSettingsAreRefusedWithTheOptionNamed()
    {
        // finite as text, infinite as the float the option holds
        Assert.Equal("--lr must be positive, got Infinity", Assert.Throws<ArgumentException>(() => new ForecastTrainSettings { LearningRate = float.Parse("1e39", System.Globalization.CultureInfo.InvariantCulture) }.Validate()).Message);
        Assert.Equal("--weight-decay must be 0 or more, got Infinity", Assert.Throws<ArgumentException>(() => new ForecastTrainSettings { WeightDecay = float.Parse("1e39", System.Globalization.CultureInfo.InvariantCulture) }.Validate()).Message);
        Assert.Equal("--clip must be 0 or more, got -1", Assert.Throws<ArgumentException>(() => new ForecastTrainSettings { ClipNorm = -1 }.Validate()).Message);
        Assert.Equal("--models is empty", Assert.Throws<ArgumentException>(() => new ForecastCompareSettings { Models = [] }.Validate()).Message);
        Assert.Equal("--horizons: '0' is not a positive integer", Assert.Throws<ArgumentException>(() => new ForecastCompareSettings { Horizons = [96, 0] }.Validate()).Message);
        Assert.StartsWith("unknown model 'lstm'", Assert.Throws<ArgumentException>(() => new ForecastCompareSettings { Models = ["linear", "lstm"] }.Validate()).Message);
        Assert.Equal("--follow needs --stream", Assert.Throws<ArgumentException>(() => new ForecastPredictSettings { Run = _dir, Follow = true }.Validate()).Message);
    }

    [Fact]
    public void EachComparedRunHasItsOwnFolderAndStartsFresh()
    {
        var compare = new ForecastCompareSettings { OutputDirectory = "cmp", Runs = new ForecastTrainSettings { Resume = true, StopAfter = 5, DModel = 16 } };
        var run = compare.Run("linear", 192);
        Assert.Equal(Path.Combine("cmp", "linear-192"), run.OutputDirectory);
        Assert.Equal(("linear", 192, false, (long?)null, (int?)16), (run.Model, run.Horizon, run.Resume, run.StopAfter, run.DModel));
        Assert.Equal(Path.Combine("runs", "forecast", "synthetic-compare"), new ForecastCompareSettings().OutputOrDefault);
    }

    [Fact]
    public void FollowWritesABlockPerRowAndRefusesARowThatGoesBackInTime()
    {
        var series = SyntheticSeries.Generate(rows: 600);
        var config = ForecastDefaults.Config("mamba", 24, 4, 3, 0) with { Embedding = "temporal", RevIn = false, DModel = 8, DFf = 8, Layers = 1, DState = 4 };
        using (var model = Forecaster.Create(config, seed: 1))
            SavedForecaster.Save(Path.Combine(_dir, "model"), model, ForecastData.Prepare(series, "ratio", 24, 4, timeFeatures: false));
        string Row(int r) => series.Timestamps![r].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "," +
            string.Join(",", Enumerable.Range(0, 3).Select(c => series[r, c].ToString("R", CultureInfo.InvariantCulture)));
        var history = Path.Combine(_dir, "history.csv");
        File.WriteAllLines(history, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(0, 30).Select(Row)));
        var output = new StringWriter();
        var settings = new ForecastPredictSettings { Run = _dir, Data = history, Stream = true, Follow = true };

        var e = Assert.Throws<InvalidDataException>(() => ForecastPrediction.Run(settings, new StringReader(Row(30) + "\n\n" + Row(5) + "\n"), output, TextWriter.Null));
        Assert.Equal("stdin:3: 2024-01-01 05:00:00 does not come after the previous row's 2024-01-02 06:00:00", e.Message);
        var lines = output.ToString().TrimEnd().Split(Environment.NewLine);
        Assert.Equal(1 + 2 * 4, lines.Length);   // the header, the block after the history, the block after row 30
        Assert.Equal("issued_at,date,load,temperature,price", lines[0]);
        Assert.StartsWith("2024-01-02 05:00:00,2024-01-02 06:00:00,", lines[1]);
        Assert.StartsWith("2024-01-02 06:00:00,2024-01-02 10:00:00,", lines[^1]);
    }
}
