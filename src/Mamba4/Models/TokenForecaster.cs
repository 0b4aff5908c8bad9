using Mamba4.Data.TimeSeries;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>
/// The shared skeleton of the Mamba and Transformer forecasters (names as iTransformer / S-Mamba):
/// <code>
/// x      = RevIN(window)                                  (B, L, N)   optional
/// tokens = variate:  [x per variable | time features]     (B, N+F, L) one token per variable (and per calendar feature)
///          temporal: [x_t | time features_t]               (B, L, N+F) one token per time step
/// h      = dropout(embedding(tokens))                     (B, T, d)   embedding: Linear(L or N+F → d)
/// h      = norm(layers(h))                                (B, T, d)   subclasses supply the layers
/// y      = variate:  projector(h[:, :N])                  (B, N, H)   projector: Linear(d → H)
///          temporal: projector(h[:, T−1]).view(B, H, N)   (B, H, N)   projector: Linear(d → H·N), from the last step
/// y      = RevIN⁻¹(y)
/// </code>
/// </summary>
public abstract class TokenForecaster : Forecaster
{
    protected TokenForecaster(ForecasterConfig config, Random rng) : base(config)
    {
        int tokenIn = config.Temporal ? config.Variables + config.TimeFeatures : config.InputLength;
        TokenEmbedding = Child("embedding", new Nn.Linear(tokenIn, config.DModel, true, rng));
    }

    /// <summary>Creates the final norm and the projector; subclasses call it after creating their layers.</summary>
    protected void CreateHead(Random rng)
    {
        Norm = Child("norm", new Nn.LayerNorm(Config.DModel));
        int outputs = Config.Temporal ? Config.Horizon * Config.Variables : Config.Horizon;
        Projector = Child("projector", new Nn.Linear(Config.DModel, outputs, true, rng));
    }

    public Nn.Linear TokenEmbedding { get; }
    public Nn.LayerNorm Norm { get; private set; } = null!;
    public Nn.Linear Projector { get; private set; } = null!;
    public override bool VariableMajor => !Config.Temporal;

    /// <summary>The layers over the embedded tokens h (B, T, d) → (B, T, d).</summary>
    protected abstract Tensor Encode(Tensor h, ref ulong seed);

    public override Tensor Forward(ForecastBatch batch)
    {
        CheckBatch(batch);
        int b = batch.Size, l = batch.InputLength, n = batch.Variables, f = Config.TimeFeatures, horizon = Config.Horizon;
        RevIn? stats = null;
        var x = batch.Inputs;
        if (Config.RevIn) (stats, x) = RevIn.Apply(x, b, l, n);
        Tensor y;
        if (Config.Temporal)
        {
            var h = EncodeTokens(TemporalTokens(x, batch.InputMarks, b, l, n, f), b, l);
            y = Projector.Forward(F.LastPosition(h)).Reshape(b, horizon, n);
        }
        else
        {
            int tokens = n + f;
            var h = EncodeTokens(VariateTokens(x, batch.InputMarks, b, l, n, f), b, tokens);
            if (f > 0) h = FirstTokens(h, n);
            y = Projector.Forward(h).Reshape(b, n, horizon);
        }
        return stats is null ? y : stats.Denormalize(y, horizon, VariableMajor);
    }

    /// <summary>embedding → dropout → layers → norm over host tokens [b, t, in].</summary>
    protected Tensor EncodeTokens(float[] tokens, int b, int t)
    {
        var seed = DropoutSeed;
        var h = F.Dropout(TokenEmbedding.Forward(Tensor.From(tokens, b, t, TokenEmbedding.InFeatures)), Config.Dropout, seed++, Training);
        h = Norm.Forward(Encode(h, ref seed));
        DropoutSeed = seed;
        return h;
    }

    /// <summary>[B, L, N] values and [B, L, F] features → [B, L, N+F].</summary>
    protected static float[] TemporalTokens(float[] x, float[]? marks, int b, int l, int n, int f)
    {
        if (f == 0) return x;
        if (marks is null) throw new ArgumentException("the model takes time features; the batch has none");
        var t = new float[(long)b * l * (n + f)];
        for (long r = 0; r < (long)b * l; r++)
        {
            x.AsSpan((int)(r * n), n).CopyTo(t.AsSpan((int)(r * (n + f))));
            marks.AsSpan((int)(r * f), f).CopyTo(t.AsSpan((int)(r * (n + f) + n)));
        }
        return t;
    }

    /// <summary>[B, L, N] values and [B, L, F] features → [B, N+F, L] (one row per variable, then per feature).</summary>
    protected static float[] VariateTokens(float[] x, float[]? marks, int b, int l, int n, int f)
    {
        if (f > 0 && marks is null) throw new ArgumentException("the model takes time features; the batch has none");
        int tk = n + f;
        var t = new float[(long)b * tk * l];
        for (int i = 0; i < b; i++)
            for (int s = 0; s < l; s++)
            {
                for (int v = 0; v < n; v++) t[((long)i * tk + v) * l + s] = x[((long)i * l + s) * n + v];
                for (int v = 0; v < f; v++) t[((long)i * tk + n + v) * l + s] = marks![((long)i * l + s) * f + v];
            }
        return t;
    }

    /// <summary>h (B, T, d) → h[:, :n] (B, n, d), a differentiable row gather.</summary>
    protected static Tensor FirstTokens(Tensor h, int n)
    {
        int b = h.Shape[0], t = h.Shape[1], d = h.Shape[2];
        var rows = new long[b * n];
        for (int i = 0; i < b; i++)
            for (int v = 0; v < n; v++) rows[i * n + v] = (long)i * t + v;
        return F.Embedding(h.Reshape(b * t, d), Tensor.From(rows, b * n)).Reshape(b, n, d);
    }
}
