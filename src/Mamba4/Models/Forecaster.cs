using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Data.TimeSeries;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes and options of a forecasting model (all three kinds; each reads the fields it uses).</summary>
public sealed record ForecasterConfig
{
    public static readonly string[] Models = ["mamba", "linear", "transformer"];
    public static readonly string[] Embeddings = ["variate", "temporal"];

    /// <summary>mamba (MambaForecaster), linear (DLinear) or transformer (TransformerForecaster).</summary>
    public string Model { get; init; } = "mamba";
    public int InputLength { get; init; } = 96;
    public int Horizon { get; init; } = 96;
    /// <summary>Number of variables in and out (N).</summary>
    public int Variables { get; init; } = 7;
    /// <summary>
    /// How values become tokens: "variate" — one token per variable, a linear map of its whole input window
    /// (L → d_model; iTransformer / S-Mamba); "temporal" — one token per time step, a linear map over the
    /// variables (N → d_model; Informer-style), which the recurrent step can stream.
    /// </summary>
    public string Embedding { get; init; } = "variate";
    /// <summary>Calendar features fed beside the values (0 = none): extra tokens (variate) or extra inputs per step (temporal).</summary>
    public int TimeFeatures { get; init; }
    /// <summary>Reversible instance normalisation: each input window is centred and scaled per variable, the forecast mapped back.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("revin")]
    public bool RevIn { get; init; } = true;
    public int DModel { get; init; } = 128;
    public int Layers { get; init; } = 2;
    public int DState { get; init; } = 16;
    public int DConv { get; init; } = 4;
    public int Expand { get; init; } = 2;
    /// <summary>Feed-forward width.</summary>
    public int DFf { get; init; } = 256;
    /// <summary>Attention heads (transformer).</summary>
    public int Heads { get; init; } = 8;
    public float Dropout { get; init; } = 0.1f;
    /// <summary>Mamba with variate tokens: a second mixer reads the tokens in reverse (S-Mamba); temporal tokens are always causal.</summary>
    public bool Bidirectional { get; init; }
    /// <summary>Mamba: the layers' mixer, mamba1 or mamba2 (SSD heads of <see cref="HeadDim"/>; null = <see cref="MambaConfig.DefaultHeadDim"/>).</summary>
    public string Mixer { get; init; } = "mamba1";
    public int? HeadDim { get; init; }
    /// <summary>DLinear: moving-average kernel of the trend.</summary>
    public int MovingAverage { get; init; } = 25;

    public bool Temporal => Embedding == "temporal";

    /// <summary>Checks every size against <see cref="ModelLimits"/>; messages name the command-line options.</summary>
    public void Validate()
    {
        if (!Models.Contains(Model)) throw new ArgumentException($"unknown model '{Model}' (expected one of: {string.Join(", ", Models)})");
        if (!Embeddings.Contains(Embedding)) throw new ArgumentException($"unknown embedding '{Embedding}' (expected one of: {string.Join(", ", Embeddings)})");
        ModelLimits.Check("--input-len", InputLength, ModelLimits.Positions);
        ModelLimits.Check("--horizon", Horizon, ModelLimits.Positions);
        ModelLimits.Check("variables", Variables, ModelLimits.Variables);
        if (TimeFeatures is < 0 or > ModelLimits.Variables) throw new ArgumentException($"time features must be from 0 to {ModelLimits.Variables}, got {TimeFeatures}");
        if (Model == "linear")
        {
            ModelLimits.Check("--moving-average", MovingAverage, ModelLimits.Positions);
            if (MovingAverage % 2 == 0) throw new ArgumentException($"--moving-average must be odd (a centred window), got {MovingAverage}");
            return;
        }
        ModelLimits.Check("--d-model", DModel, ModelLimits.Width);
        ModelLimits.Check("--layers", Layers, ModelLimits.Layers);
        ModelLimits.Check("--d-ff", DFf, ModelLimits.InnerWidth);
        if (Temporal) ModelLimits.Check("--horizon × variables (the outputs of a temporal model)", (long)Horizon * Variables, ModelLimits.Vocabulary);
        if (Model == "mamba")
        {
            ModelLimits.Check("--d-state", DState, ModelLimits.StateSize);
            ModelLimits.Check("--d-conv", DConv, ModelLimits.ConvKernel);
            ModelLimits.Check("--expand", Expand, ModelLimits.Expand);
            ModelLimits.Check("--expand × --d-model", (long)Expand * DModel, ModelLimits.InnerWidth);
            _ = MambaForecaster.Mixer(this);   // --mixer and --head-dim
        }
        else if (Mixer != "mamba1" || HeadDim is not null) throw new ArgumentException($"--mixer and --head-dim apply to the mamba model only, not {Model}");
        if (Model == "transformer")
        {
            ModelLimits.Check("--heads", Heads, ModelLimits.Heads);
            if (DModel % Heads != 0) throw new ArgumentException($"--d-model ({DModel}) must be a multiple of --heads ({Heads})");
        }
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"--dropout must be in [0, 1), got {Dropout}");
    }

    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, JsonOptions)!.AsObject();

    /// <summary>The "model" section of forecaster.json (written by <see cref="ToJson"/>; a field it does not write is an error).</summary>
    public static ForecasterConfig FromConfig(ConfigReader r)
    {
        var d = new ForecasterConfig();
        r.RejectUnknown(d.ToJson().Select(kv => kv.Key));
        var c = new ForecasterConfig
        {
            Model = r.Choice(Models, "model") ?? d.Model,
            InputLength = r.Size(ModelLimits.Positions, "input_length") ?? d.InputLength,
            Horizon = r.Size(ModelLimits.Positions, "horizon") ?? d.Horizon,
            Variables = r.Size(ModelLimits.Variables, "variables") ?? d.Variables,
            Embedding = r.Choice(Embeddings, "embedding") ?? d.Embedding,
            TimeFeatures = r.Count(ModelLimits.Variables, "time_features") ?? d.TimeFeatures,
            RevIn = r.Bool("revin") ?? d.RevIn,
            DModel = r.Size(ModelLimits.Width, "d_model") ?? d.DModel,
            Layers = r.Size(ModelLimits.Layers, "layers") ?? d.Layers,
            DState = r.Size(ModelLimits.StateSize, "d_state") ?? d.DState,
            DConv = r.Size(ModelLimits.ConvKernel, "d_conv") ?? d.DConv,
            Expand = r.Size(ModelLimits.Expand, "expand") ?? d.Expand,
            DFf = r.Size(ModelLimits.InnerWidth, "d_ff") ?? d.DFf,
            Heads = r.Size(ModelLimits.Heads, "heads") ?? d.Heads,
            Dropout = r.Probability("dropout") ?? d.Dropout,
            Bidirectional = r.Bool("bidirectional") ?? d.Bidirectional,
            MovingAverage = r.Size(ModelLimits.Positions, "moving_average") ?? d.MovingAverage,
            Mixer = r.Choice(MambaConfig.MixerNames, "mixer") ?? d.Mixer,
            HeadDim = r.Size(ModelLimits.InnerWidth, "head_dim"),
        };
        try { c.Validate(); }
        catch (ArgumentException e) { throw r.Error(e.Message); }
        return c;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        IgnoreReadOnlyProperties = true,
    };
}

/// <summary>
/// A forecasting model: a batch of input windows (normalised values, time-major [B, L, N]) → the next
/// H values of every variable. <see cref="Forward"/> returns [B, H, N] or, when <see cref="VariableMajor"/>,
/// [B, N, H] (whichever the model computes without a transpose); <see cref="Predict"/> always returns
/// time-major values on the host.
/// </summary>
public abstract class Forecaster : Module
{
    protected Forecaster(ForecasterConfig config)
    {
        config.Validate();
        Config = config;
    }

    public ForecasterConfig Config { get; }
    public abstract bool VariableMajor { get; }
    public abstract Tensor Forward(ForecastBatch batch);

    /// <summary>The parameters <see cref="Create"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(ForecasterConfig c)
    {
        var s = new ParameterShapes();
        if (c.Model == "linear") return s.Linear("Linear_Seasonal", c.InputLength, c.Horizon).Linear("Linear_Trend", c.InputLength, c.Horizon);
        int d = c.DModel;
        s.Linear("embedding", c.Temporal ? c.Variables + c.TimeFeatures : c.InputLength, d);
        for (int i = 0; i < c.Layers; i++)
        {
            string l = $"layers.{i}";
            if (c.Model == "mamba") s.Mamba4Layer(l, MambaForecaster.Mixer(c), c.DFf, c.Bidirectional && !c.Temporal);
            else s.Linear(l + ".query_projection", d, d).Linear(l + ".key_projection", d, d).Linear(l + ".value_projection", d, d).Linear(l + ".out_projection", d, d)
                  .LayerNorm(l + ".norm1", d).Linear(l + ".conv1", d, c.DFf).Linear(l + ".conv2", c.DFf, d).LayerNorm(l + ".norm2", d);
        }
        return s.LayerNorm("norm", d).Linear("projector", d, c.Temporal ? c.Horizon * c.Variables : c.Horizon);
    }

    public static Forecaster Create(ForecasterConfig config, int seed = 0) => config.Model switch
    {
        "mamba" => new MambaForecaster(config, seed),
        "linear" => new LinearForecaster(config, seed),
        "transformer" => new TransformerForecaster(config, seed),
        _ => throw new ArgumentException($"unknown model '{config.Model}' (expected one of: {string.Join(", ", ForecasterConfig.Models)})"),
    };

    /// <summary>Mean squared error over every predicted value: mean((ŷ − y)²).</summary>
    public Tensor Loss(ForecastBatch batch)
    {
        var prediction = Forward(batch);
        var target = Tensor.From(Layout(batch.Targets ?? throw new ArgumentException("Loss: the batch has no targets"), batch.Size, batch.Horizon, batch.Variables), prediction.Shape.ToArray());
        var diff = F.Add(prediction, F.Scale(target, -1f));
        return F.Mean(F.Mul(diff, diff));
    }

    /// <summary>Forecasts in evaluation mode without recording: time-major [B, H, N] on the normalised scale.</summary>
    public float[] Predict(ForecastBatch batch)
    {
        bool training = Training;
        Eval();
        try
        {
            using var _ = GradMode.NoGrad();
            using var scope = new TensorScope();
            var y = Forward(batch).ToFloatArray();
            return VariableMajor ? Transpose(y, batch.Size, batch.Variables, batch.Horizon) : y;
        }
        finally { Train(training); }
    }

    /// <summary>Time-major [B, H, N] values in this model's output layout.</summary>
    protected float[] Layout(float[] timeMajor, int b, int h, int n) => VariableMajor ? Transpose(timeMajor, b, h, n) : timeMajor;

    /// <summary>[B, R, C] → [B, C, R] on the host.</summary>
    public static float[] Transpose(float[] x, int b, int r, int c)
    {
        var y = new float[x.Length];
        for (int i = 0; i < b; i++)
        {
            int o = i * r * c;
            for (int j = 0; j < r; j++)
                for (int k = 0; k < c; k++) y[o + k * r + j] = x[o + j * c + k];
        }
        return y;
    }

    protected void CheckBatch(ForecastBatch batch)
    {
        if (batch.InputLength != Config.InputLength || batch.Variables != Config.Variables)
            throw new ArgumentException($"{Config.Model} forecaster: a window of {batch.InputLength} steps × {batch.Variables} variables, the model takes {Config.InputLength} × {Config.Variables}");
        if (batch.Horizon != Config.Horizon)
            throw new ArgumentException($"{Config.Model} forecaster: horizon {batch.Horizon}, the model predicts {Config.Horizon}");
        if (Config.TimeFeatures > 0 && batch.MarkFeatures != Config.TimeFeatures)
            throw new ArgumentException($"{Config.Model} forecaster: the model takes {Config.TimeFeatures} time features, the batch has {batch.MarkFeatures}");
    }
}

/// <summary>
/// Reversible instance normalisation without affine parameters (RevIN as iTransformer / S-Mamba apply it):
/// each window's variables are centred and scaled by their own mean and standard deviation over the input
/// steps, σ = √(var + 1e-5) (population variance); the forecast is mapped back with the same σ and mean,
/// which are data (no gradient flows into them).
/// </summary>
public sealed class RevIn
{
    private RevIn(float[] mean, float[] std, int batch, int variables) => (Mean, Std, Batch, Variables) = (mean, std, batch, variables);

    public float[] Mean { get; }
    public float[] Std { get; }
    public int Batch { get; }
    public int Variables { get; }

    /// <summary>Statistics of x [B, L, N] per (b, n); returns them and the normalised copy.</summary>
    public static (RevIn Stats, float[] Normalized) Apply(float[] x, int b, int l, int n)
    {
        var mean = new float[b * n];
        var std = new float[b * n];
        var z = new float[x.Length];
        for (int i = 0; i < b; i++)
            for (int v = 0; v < n; v++)
            {
                double s = 0, ss = 0;
                for (int t = 0; t < l; t++) s += x[(i * l + t) * n + v];
                double m = s / l;
                for (int t = 0; t < l; t++) { double d = x[(i * l + t) * n + v] - m; ss += d * d; }
                double sd = Math.Sqrt(ss / l + 1e-5);
                mean[i * n + v] = (float)m;
                std[i * n + v] = (float)sd;
                for (int t = 0; t < l; t++) z[(i * l + t) * n + v] = (float)((x[(i * l + t) * n + v] - m) / sd);
            }
        return (new RevIn(mean, std, b, n), z);
    }

    /// <summary>y·σ + μ for an output [B, H, N] (or [B, N, H] when <paramref name="variableMajor"/>).</summary>
    public Tensor Denormalize(Tensor y, int horizon, bool variableMajor)
    {
        var scale = new float[y.NumElements];
        var shift = new float[y.NumElements];
        for (int i = 0; i < Batch; i++)
            for (int h = 0; h < horizon; h++)
                for (int v = 0; v < Variables; v++)
                {
                    long o = variableMajor ? ((long)i * Variables + v) * horizon + h : ((long)i * horizon + h) * Variables + v;
                    scale[o] = Std[i * Variables + v];
                    shift[o] = Mean[i * Variables + v];
                }
        var shape = y.Shape.ToArray();
        return F.Add(F.Mul(y, Tensor.From(scale, shape)), Tensor.From(shift, shape));
    }
}
