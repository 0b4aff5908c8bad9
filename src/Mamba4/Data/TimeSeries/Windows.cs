namespace Mamba4.Data.TimeSeries;

/// <summary>
/// A batch of forecasting windows, host-side and time-major: inputs [B, L, N] (normalised values),
/// optional input time features [B, L, F], targets [B, H, N].
/// </summary>
public sealed class ForecastBatch(int size, int inputLength, int horizon, int variables, int markFeatures, float[] inputs, float[]? inputMarks, float[]? targets)
{
    public int Size { get; } = size;
    public int InputLength { get; } = inputLength;
    public int Horizon { get; } = horizon;
    public int Variables { get; } = variables;
    public int MarkFeatures { get; } = markFeatures;
    public float[] Inputs { get; } = inputs;
    public float[]? InputMarks { get; } = inputMarks;
    /// <summary>The values to predict (null when forecasting the unknown future).</summary>
    public float[]? Targets { get; } = targets;
}

/// <summary>
/// Every window (stride 1) of a row range of a normalised series: window w takes rows
/// [start + w, start + w + L) as input and the next H rows as target.
/// </summary>
public sealed class WindowSet
{
    private readonly float[] _values, _marks;
    private readonly int _n, _f;

    public WindowSet(float[] normalized, int variables, float[]? marks, int markFeatures, RowRange range, int inputLength, int horizon)
    {
        if (range.Start < 0 || (long)range.End * variables > normalized.Length)
            throw new ArgumentOutOfRangeException(nameof(range), $"rows {range} lie outside a series of {normalized.Length / variables} rows");
        (_values, _n, _marks, _f) = (normalized, variables, marks ?? [], marks is null ? 0 : markFeatures);
        Range = range;
        InputLength = inputLength;
        Horizon = horizon;
        Count = DataSplits.WindowCount(range, inputLength, horizon);
    }

    public RowRange Range { get; }
    public int InputLength { get; }
    public int Horizon { get; }
    public int Variables => _n;
    public int MarkFeatures => _f;
    public int Count { get; }

    /// <summary>The first input row of window <paramref name="window"/>.</summary>
    public int StartRow(int window) => Range.Start + window;

    public ForecastBatch Batch(ReadOnlySpan<int> windows)
    {
        int b = windows.Length, l = InputLength, h = Horizon;
        var x = new float[(long)b * l * _n];
        var y = new float[(long)b * h * _n];
        var m = _f > 0 ? new float[(long)b * l * _f] : null;
        for (int i = 0; i < b; i++)
        {
            int w = windows[i];
            if ((uint)w >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(windows), $"window {w} of {Count}");
            int s = StartRow(w);
            _values.AsSpan(s * _n, l * _n).CopyTo(x.AsSpan(i * l * _n));
            _values.AsSpan((s + l) * _n, h * _n).CopyTo(y.AsSpan(i * h * _n));
            if (m is not null) _marks.AsSpan(s * _f, l * _f).CopyTo(m.AsSpan(i * l * _f));
        }
        return new ForecastBatch(b, l, h, _n, _f, x, m, y);
    }

    /// <summary>Windows [first, first + count).</summary>
    public ForecastBatch Batch(int first, int count) => Batch(Enumerable.Range(first, count).ToArray());
}

/// <summary>Mean squared and mean absolute error over every predicted value (accumulated in double).</summary>
public sealed class ForecastMetrics
{
    private double _sq, _abs;

    public long Count { get; private set; }
    public double Mse => Count == 0 ? double.NaN : _sq / Count;
    public double Mae => Count == 0 ? double.NaN : _abs / Count;

    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> truth)
    {
        if (prediction.Length != truth.Length) throw new ArgumentException($"{prediction.Length} predictions for {truth.Length} true values");
        for (int i = 0; i < prediction.Length; i++)
        {
            double d = (double)prediction[i] - truth[i];
            _sq += d * d;
            _abs += Math.Abs(d);
        }
        Count += prediction.Length;
    }
}
