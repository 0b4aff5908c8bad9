using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Nn;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Models;

/// <summary>
/// Mamba for multivariate forecasting: the <see cref="TokenForecaster"/> skeleton (RevIN, value embedding,
/// head to the horizon) with Mamba4 layers in between (Mamba → dropout → LayerNorm(+residual) → FFN).
/// With variate tokens the layers may be bidirectional (S-Mamba: the variables have no order; on ETTh1 one
/// direction validated as well at two thirds of the cost, so it is off by default); with temporal tokens they
/// are causal, and the model can forecast a growing series in O(1) per observation through <see cref="ForecastStream"/>.
/// </summary>
public sealed class MambaForecaster : TokenForecaster
{
    public MambaForecaster(ForecasterConfig config, int seed = 0) : this(config, new Random(seed)) { }

    private MambaForecaster(ForecasterConfig config, Random rng) : base(config, rng)
    {
        var mixer = Mixer(config);
        bool bidirectional = config.Bidirectional && !config.Temporal;
        Layers = Child("layers", new ModuleList<Mamba4Layer>(Enumerable.Range(0, config.Layers).Select(_ =>
            new Mamba4Layer(mixer, config.DFf, config.Dropout, 1e-5f, residual: true, rng, bidirectional))));
        CreateHead(rng);
    }

    public static MambaConfig Mixer(ForecasterConfig c) => new MambaConfig
    {
        DModel = c.DModel, NLayer = c.Layers, DState = c.DState, DConv = c.DConv, Expand = c.Expand,
        Bias = false, ConvBias = true, VocabSize = 1,
    }.WithMixer(MambaConfig.ParseMixer(c.Mixer), c.HeadDim);

    public ModuleList<Mamba4Layer> Layers { get; }

    /// <summary>True when the model reads time steps causally without per-window statistics: it can stream.</summary>
    public bool CanStream => Config.Temporal && !Config.RevIn && Layers.Items.All(l => l.MambaReverse is null);

    protected override Tensor Encode(Tensor h, ref ulong seed)
    {
        foreach (var layer in Layers.Items) h = layer.Forward(h, ref seed);
        return h;
    }

    /// <summary>
    /// The forecast after a whole history, recomputed from scratch by the parallel forward (what the stream must equal):
    /// values [T, N] normalised, marks [T, F] → [H, N] normalised. Requires <see cref="CanStream"/>.
    /// </summary>
    public float[] ForecastHistory(float[] values, float[]? marks)
    {
        RequireStreaming();
        int n = Config.Variables, f = Config.TimeFeatures, t = values.Length / n;
        if (t < 1 || values.Length != t * n) throw new ArgumentException($"history of {values.Length} values is not a whole number of rows of {n} variables");
        bool training = Training;
        Eval();
        try
        {
            using var _ = GradMode.NoGrad();
            using var scope = new TensorScope();
            var h = EncodeTokens(TemporalTokens(values, marks, 1, t, n, f), 1, t);
            return Projector.Forward(F.LastPosition(h)).ToFloatArray();
        }
        finally { Train(training); }
    }

    /// <summary>A forecaster that follows one growing series with the recurrent state (see <see cref="ForecastStream"/>).</summary>
    public ForecastStream Stream() => new(this);

    internal void RequireStreaming()
    {
        if (!CanStream)
            throw new InvalidOperationException("streaming forecasts need a Mamba forecaster with temporal tokens, causal layers and no RevIN " +
                $"(this one: embedding {Config.Embedding}, revin {Config.RevIn.ToString().ToLowerInvariant()}); train one with --embedding temporal --revin false");
    }

    /// <summary>One observation per stream: token (b, N+F) → normalised hidden state (b, d) after the last layer.</summary>
    internal Tensor Step(Tensor token, MambaState state)
    {
        var seed = DropoutSeed;
        var h = F.Dropout(TokenEmbedding.Forward(token), Config.Dropout, seed++, Training);
        for (int i = 0; i < Layers.Count; i++) h = Layers[i].Step(h, state.Layers[i], ref seed);
        return Norm.Forward(h);
    }
}

/// <summary>
/// Forecasts on a growing series: each <see cref="Observe"/> feeds one new observation through the
/// recurrent step of every layer (conv and SSM state, fixed size), so an update costs the same at the
/// 10th and the 10⁶th observation; <see cref="Forecast"/> applies the head to the current state. The
/// result equals <see cref="MambaForecaster.ForecastHistory"/> over everything observed (to float tolerance).
/// </summary>
public sealed class ForecastStream : IDisposable
{
    private readonly MambaForecaster _model;
    private readonly MambaState _state;
    private Tensor? _hidden;

    internal ForecastStream(MambaForecaster model)
    {
        model.RequireStreaming();
        _model = model;
        _state = new MambaState(model.Config.Layers, 1, MambaForecaster.Mixer(model.Config), model.Projector.Weight.Device);
    }

    public long Observations => _state.Position;

    /// <summary>One time step: the N normalised values and the F time features of the model.</summary>
    public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<float> marks = default)
    {
        var c = _model.Config;
        if (values.Length != c.Variables || marks.Length != c.TimeFeatures)
            throw new ArgumentException($"an observation is {c.Variables} values and {c.TimeFeatures} time features; got {values.Length} and {marks.Length}");
        var token = new float[c.Variables + c.TimeFeatures];
        values.CopyTo(token);
        marks.CopyTo(token.AsSpan(c.Variables));
        bool training = _model.Training;
        _model.Eval();
        try
        {
            using var _ = GradMode.NoGrad();
            using var scope = new TensorScope();
            var h = _model.Step(Tensor.From(token, 1, token.Length), _state);
            _hidden?.Dispose();
            _hidden = scope.Keep(h).Persist();
            _state.Position++;
        }
        finally { _model.Train(training); }
    }

    /// <summary>The recurrent state and the last hidden vector as flat arrays (empty before the first observation): what a server persists per series.</summary>
    public (float[] State, float[] Hidden) Export() => (_state.ToArray(), _hidden?.ToFloatArray() ?? []);

    /// <summary>Continues from an <see cref="Export"/> of a stream of this model after <paramref name="observations"/> observations.</summary>
    public void Import(float[] state, float[] hidden, long observations)
    {
        _state.Load(state);
        _state.Position = observations;
        _hidden?.Dispose();
        _hidden = hidden.Length == 0 ? null : Tensor.From(hidden, 1, hidden.Length).Persist();
    }

    /// <summary>The next H steps after the last observation, [H, N] on the normalised scale.</summary>
    public float[] Forecast()
    {
        if (_hidden is null) throw new InvalidOperationException("no observation yet");
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        return _model.Projector.Forward(_hidden).ToFloatArray();
    }

    public void Dispose()
    {
        _hidden?.Dispose();
        _state.Dispose();
    }
}
