using System.Globalization;

namespace Mamba4.Data.TimeSeries;

/// <summary>Rows [Start, End) of a series.</summary>
public readonly record struct RowRange(int Start, int End)
{
    public int Length => End - Start;
    public override string ToString() => $"[{Start}, {End})";
}

/// <summary>
/// Train / validation / test row ranges as the long-term forecasting literature draws them (the
/// Informer / Autoformer / DLinear data loaders). The validation and test ranges start
/// <c>inputLength</c> rows before their first target so that their first window may look back into the
/// previous split; every window of a range (stride 1) is used. The normaliser is fitted on
/// <see cref="Fit"/>, the training rows.
/// </summary>
public sealed record DataSplits(RowRange Train, RowRange Validation, RowRange Test, string Description)
{
    /// <summary>Rows whose statistics the normaliser uses (the training split).</summary>
    public RowRange Fit => Train;

    /// <summary>Windows of input + horizon rows that fit in a range, stride 1.</summary>
    public static int WindowCount(RowRange r, int inputLength, int horizon) => Math.Max(0, r.Length - inputLength - horizon + 1);
}

public static class Splits
{
    /// <summary>
    /// The ETT split: 12 months train, 4 months validation, 4 months test, 30-day months; rows after the
    /// 20th month are not used. rowsPerHour = 1 for ETTh, 4 for ETTm. With m = 30·24·rowsPerHour rows a month:
    /// train [0, 12m), validation [12m − L, 16m), test [16m − L, 20m).
    /// </summary>
    public static DataSplits Ett(int rows, int inputLength, int horizon, int rowsPerHour = 1, string source = "data")
    {
        int month = 30 * 24 * rowsPerHour;
        int trainEnd = 12 * month, valEnd = 16 * month, testEnd = 20 * month;
        if (rows < testEnd)
            throw new InvalidDataException($"{source}: the ETT split needs {testEnd} rows (20 months of {month} rows), the series has {rows}; use --split ratio for other data");
        var s = new DataSplits(new RowRange(0, trainEnd), new RowRange(trainEnd - inputLength, valEnd), new RowRange(valEnd - inputLength, testEnd),
            rowsPerHour == 1 ? "ett-hour" : rowsPerHour == 4 ? "ett-minute" : $"ett ({rowsPerHour} rows an hour)");
        return Check(s, inputLength, horizon, source);
    }

    /// <summary>
    /// The ratio split of the literature's custom datasets (Autoformer's Dataset_Custom): n_train = ⌊n·train⌋,
    /// n_test = ⌊n·test⌋, n_val = n − n_train − n_test; train [0, n_train), validation
    /// [n_train − L, n_train + n_val), test [n − n_test − L, n).
    /// </summary>
    public static DataSplits Ratio(int rows, int inputLength, int horizon, double train = 0.7, double test = 0.2, string source = "data")
    {
        if (!(train > 0 && test > 0 && train + test < 1))
            throw new ArgumentException($"split ratios must be positive and leave room for validation; got train {train}, test {test}");
        int nTrain = (int)(rows * train), nTest = (int)(rows * test), nVal = rows - nTrain - nTest;
        var s = new DataSplits(new RowRange(0, nTrain), new RowRange(nTrain - inputLength, nTrain + nVal), new RowRange(rows - nTest - inputLength, rows),
            $"ratio {F(train)}/{F(1 - train - test)}/{F(test)}");
        return Check(s, inputLength, horizon, source);
    }

    /// <summary>
    /// Parses --split: "auto" (ETT for files named ETTh*/ETTm*, else ratio 0.7/0.1/0.2), "ett-hour", "ett-minute",
    /// or "ratio" / "ratio:TRAIN,VAL,TEST" (e.g. ratio:0.7,0.1,0.2; they must add up to 1).
    /// </summary>
    public static DataSplits Resolve(string spec, string source, int rows, int inputLength, int horizon)
    {
        var s = spec.Trim().ToLowerInvariant();
        var name = Path.GetFileName(source);
        if (s == "auto")
        {
            if (name.StartsWith("ETTh", StringComparison.Ordinal)) s = "ett-hour";
            else if (name.StartsWith("ETTm", StringComparison.Ordinal)) s = "ett-minute";
            else s = "ratio";
        }
        if (s is "ett-hour" or "etth") return Ett(rows, inputLength, horizon, 1, source);
        if (s is "ett-minute" or "ettm") return Ett(rows, inputLength, horizon, 4, source);
        if (s == "ratio") return Ratio(rows, inputLength, horizon, source: source);
        if (s.StartsWith("ratio:", StringComparison.Ordinal))
        {
            var parts = s["ratio:".Length..].Split(',');
            var r = new double[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out r[i]) || !(r[i] > 0))
                    throw new ArgumentException($"--split {spec}: '{parts[i]}' is not a positive number");
            if (r.Length != 3 || Math.Abs(r.Sum() - 1) > 1e-6)
                throw new ArgumentException($"--split {spec}: expected three ratios train,validation,test adding up to 1");
            return Ratio(rows, inputLength, horizon, r[0], r[2], source);
        }
        throw new ArgumentException($"--split must be auto, ett-hour, ett-minute, ratio or ratio:TRAIN,VAL,TEST; got '{spec}'");
    }

    private static DataSplits Check(DataSplits s, int inputLength, int horizon, string source)
    {
        if (inputLength < 1 || horizon < 1) throw new ArgumentException($"input length and horizon must be positive, got {inputLength} and {horizon}");
        foreach (var (name, r) in new[] { ("training", s.Train), ("validation", s.Validation), ("test", s.Test) })
        {
            if (r.Start < 0)
                throw new InvalidDataException($"{source}: the {name} split would start before the first row (input length {inputLength} is longer than the training split)");
            if (DataSplits.WindowCount(r, inputLength, horizon) < 1)
                throw new InvalidDataException($"{source}: the {name} split (rows {r}) holds {r.Length} rows, too few for one window of input {inputLength} + horizon {horizon}");
        }
        return s;
    }

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}
