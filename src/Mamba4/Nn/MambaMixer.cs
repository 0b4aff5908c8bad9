using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// The Mamba block (mamba_ssm <c>Mamba</c> / HF <c>MambaMixer</c>), parameter names as theirs.
/// Shapes: b batch, l length, d d_model, e d_inner, n d_state, r dt_rank.
/// <code>
/// x, z  = in_proj(h).split(e, e)                 (b, l, e) each
/// x     = silu(conv1d(x))                        causal depthwise, kernel d_conv
/// dt, B, C = x_proj(x).split(r, n, n)            (b, l, r), (b, l, n), (b, l, n)
/// Δ     = softplus(dt_proj(dt))                  (b, l, e)   (bias added inside the scan)
/// A     = −exp(A_log)                            (e, n)
/// y     = scan(x, Δ, A, B, C, D) · silu(z)       h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t,  y_t = C_t h_t + D x_t
/// out   = out_proj(y)                            (b, l, d)
/// </code>
/// With <see cref="MambaConfig.Selective"/> = false, B, C (parameters "B", "C" of shape (e, n)) and
/// Δ = softplus(dt_bias) are learned but input-independent: the time-invariant (S4-style) ablation.
/// With <see cref="MambaConfig.MixerRmsEps"/> set (Falcon-Mamba, HF <c>FalconMambaMixer</c>), dt, B and C are each
/// RMS-normalised over their last axis without a weight, x / √(mean x² + ε), right after the x_proj split.
/// </summary>
public sealed class MambaMixer : SsmMixer
{
    public MambaMixer(MambaConfig config, Random rng)
    {
        Config = config;
        int d = config.DModel, e = config.DInner, n = config.DState, r = config.DtRank;
        InProj = Child("in_proj", new Linear(d, 2 * e, config.Bias, rng));
        Conv1d = Child("conv1d", new CausalConv1d(e, config.DConv, config.ConvBias, rng));
        if (config.Selective)
        {
            XProj = Child("x_proj", new Linear(e, r + 2 * n, false, rng));
            DtProj = Child("dt_proj", new Linear(r, e, true, rng));
            // dt_proj: weight U(±r^−½·dt_scale) (or constant), bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max].
            double std = Math.Pow(r, -0.5) * config.DtScale;
            var w = DtProj.Weight.AsSpan<float>();
            if (!Init.ValuesSkipped)
                for (int i = 0; i < w.Length; i++) w[i] = (float)(config.DtInit == "constant" ? std : (rng.NextDouble() * 2 - 1) * std);
            InitDtBias(DtProj.Bias!.AsSpan<float>(), config, rng);
        }
        else
        {
            B = Parameter("B", Init.Normal(rng, new Shape(e, n), 0, Math.Pow(n, -0.5)));
            C = Parameter("C", Init.Normal(rng, new Shape(e, n), 0, Math.Pow(n, -0.5)));
            DtBias = Parameter("dt_bias", Tensor.Empty(new Shape(e)).Persist());
            InitDtBias(DtBias.AsSpan<float>(), config, rng);
        }
        // S4D-real: A_log[c, s] = log(s + 1); D = 1.
        var aLog = Tensor.Empty(new Shape(e, n)).Persist();
        var a = aLog.AsSpan<float>();
        for (int c = 0; c < e; c++)
            for (int s = 0; s < n; s++) a[c * n + s] = MathF.Log(s + 1);
        ALog = Parameter("A_log", aLog);
        D = Parameter("D", Init.Constant(new Shape(e), 1f));
        OutProj = Child("out_proj", new Linear(e, d, config.Bias, rng));
    }

    private static void InitDtBias(Span<float> bias, MambaConfig config, Random rng)
    {
        double lo = Math.Log(config.DtMin), hi = Math.Log(config.DtMax);
        for (int i = 0; i < bias.Length; i++)
        {
            double dt = Math.Max(Math.Exp(lo + rng.NextDouble() * (hi - lo)), config.DtInitFloor);
            bias[i] = (float)(dt + Math.Log(1 - Math.Exp(-dt)));   // inverse softplus: dt + log(1 − e^{−dt}) (double keeps it exact enough)
        }
    }

    public MambaConfig Config { get; }
    public override Linear InProj { get; }
    public CausalConv1d Conv1d { get; }
    public Linear? XProj { get; }
    public Linear? DtProj { get; }
    public Tensor? B { get; }
    public Tensor? C { get; }
    public Tensor? DtBias { get; }
    public Tensor ALog { get; }
    public override Tensor D { get; }
    public override IEnumerable<Linear> Linears => XProj is null ? [InProj, OutProj] : [InProj, XProj, DtProj!, OutProj];
    public override Linear OutProj { get; }

    /// <summary>
    /// Training keeps only in_proj's outputs (x, z) and the gated scan output of this mixer for the backward, which runs
    /// the conv, x_proj and dt_proj again (not the scan: its backward recomputes the states from its inputs), as
    /// mamba_ssm's fused inner function does; off, every intermediate is kept. Same gradients either way.
    /// Sequences continued from a state (<see cref="Forward"/> with a state) always keep everything.
    /// </summary>
    public bool Recompute { get; set; }

    public override Tensor Forward(Tensor h, MambaLayerState? state = null, Tensor? residual = null)
    {
        var xz = F.LinearSplit(h, InProj.Weight, InProj.Bias, Config.DInner, Config.DInner);
        var (x, z) = (xz[0], xz[1]);
        var y = Recompute && state is null
            ? Checkpoint.Run("MambaMixer.Inner", () => Inner(x, z, null, outputNeeded: !Checkpoint.IsRerunning), [x, z, .. Parameters()])
            : Inner(x, z, state, outputNeeded: true);
        return OutProjection(y, residual);
    }

    /// <summary>in_proj's two outputs x, z (b, l, e) → the gated scan output y (b, l, e).</summary>
    private Tensor Inner(Tensor x, Tensor z, MambaLayerState? state, bool outputNeeded)
    {
        bool continues = state is { ForwardContinues: true };
        int window = Config.DConv - 1;
        if (continues) x = Prepend(state!.ConvState, x);   // [b, d_conv − 1 + l, e]: the conv inputs before this sequence, then x
        if (state is not null) SaveConvState(x, state);
        // u, and beside it (no gradients, BF16 products) its BF16 copy for x_proj, written by the conv itself
        var (u, u16) = continues || !Config.Selective || ProductInputType(x, XProj!.Weight) != DType.BF16
            ? (Conv1d.Forward(x, silu: true), null)
            : F.CausalConv1dWithBf16Copy(x, Conv1d.Weight, Conv1d.Bias, silu: true);
        x = continues ? DropFirst(u, window) : u;
        var (delta, b, c, deltaBias) = Projections(x, u16);
        var a = F.Scale(F.Exp(ALog), -1f);
        var (y, last) = F.SelectiveScan(x, delta, a, b, c, D, z, deltaBias, deltaSoftplus: true, returnLastState: state is not null,
            initialState: continues ? state!.SsmState.Clone() : null,   // a copy: the backward recomputes from it after SsmState is overwritten
            outputNeeded, ProductInputType(x, OutProj.Weight));   // BF16 where out_proj, y's only reader, multiplies in BF16
        if (state is not null) state.SsmState.CopyFrom(last!);
        return y;
    }

    /// <summary>[window rows of convState (b, e, window), transposed; then x (b, l, e)] → (b, window + l, e); convState is a constant.</summary>
    private static Tensor Prepend(Tensor convState, Tensor x)
    {
        int b = x.Shape[0], l = x.Shape[1], e = x.Shape[2], window = convState.Shape[2];
        var before = F.Reshape(F.CausalConv1dStateRows(convState), [b, window * e]);
        return F.Reshape(F.ConcatLastAxis(before, F.Reshape(x, [b, l * e])), [b, window + l, e]);
    }

    /// <summary>(b, window + l, e) → (b, l, e): the outputs of the sequence's own positions.</summary>
    private static Tensor DropFirst(Tensor x, int window)
    {
        int b = x.Shape[0], l = x.Shape[1] - window, e = x.Shape[2];
        return F.Reshape(F.SplitLastAxis(F.Reshape(x, [b, (window + l) * e]), window * e, l * e)[1], [b, l, e]);
    }

    /// <summary>Δ (before the bias), B, C of u — x_proj multiplying <paramref name="u16"/>, u's BF16 copy, where there is one.</summary>
    private (Tensor Delta, Tensor B, Tensor C, Tensor DeltaBias) Projections(Tensor x, Tensor? u16 = null)
    {
        if (!Config.Selective)
            return (Tensor.Zeros(x.Shape, x.DType, x.Device), B!, C!, DtBias!);
        int r = Config.DtRank, n = Config.DState;
        var parts = RmsNormed(F.SplitLastAxis(XProj!.Forward(u16 ?? x), r, n, n));
        var delta = F.Linear(parts[0], DtProj!.Weight);
        return (delta, parts[1], parts[2], DtProj.Bias!);
    }

    // Falcon-Mamba's weightless RMS norms: F.RmsNorm with a constant ones weight per width, kept per mixer on the
    // input's device (not a parameter: absent from StateDict, never trained, remade when the model changes device).
    private readonly Dictionary<int, Tensor> _ones = new();

    private Tensor[] RmsNormed(Tensor[] parts)
    {
        if (Config.MixerRmsEps is not float eps) return parts;
        var normed = new Tensor[parts.Length];
        for (int i = 0; i < parts.Length; i++) normed[i] = F.RmsNorm(parts[i], Ones(parts[i].Shape.Last, parts[i].Device), eps);
        return normed;
    }

    private Tensor Ones(int width, Device device)
    {
        if (_ones.TryGetValue(width, out var ones) && ones.Device == device) return ones;
        ones?.Dispose();
        ones = Tensor.Ones(new Shape(width), device).Persist();
        return _ones[width] = ones;
    }

    public override void Dispose()
    {
        foreach (var ones in _ones.Values) ones.Dispose();
        _ones.Clear();
        lock (_stepALock) _stepA?.A.Dispose();
        _stepA = null;
        base.Dispose();
    }

    // The decoding step's A = −exp(A_log), kept on the CPU between steps with a copy of the A_log values it was made
    // from and remade when they differ (training, loading): a compare of e·n floats instead of the Exp and Scale ops
    // (an exp per element and two tensors per layer and token).
    private (float[] ALog, Tensor A)? _stepA;
    private readonly object _stepALock = new();

    private Tensor StepA()
    {
        if (!ALog.Device.IsCpu || ALog.DType != DType.F32) return F.Scale(F.Exp(ALog), -1f);
        lock (_stepALock)
        {
            var aLog = ALog.AsSpan<float>();
            if (_stepA is not { } cached || !aLog.SequenceEqual(cached.ALog))
            {
                _stepA?.A.Dispose();
                using var scope = new TensorScope();
                using var _ = Autograd.GradMode.NoGrad();
                cached = (aLog.ToArray(), F.Scale(F.Exp(ALog), -1f).Persist());
                _stepA = cached;
            }
            return cached.A;
        }
    }

    /// <summary>Whether <see cref="Ops.F.MambaStep"/> computes this mixer's step: the selective mixer without Falcon-Mamba's
    /// inner RMS norms (those, and the time-invariant ablation, keep the unfused ops).</summary>
    public bool FusedStepSupported => Config.Selective && Config.MixerRmsEps is null;

    /// <summary>The weights of the fused decoding step of the block made of <paramref name="norm"/> and this mixer.</summary>
    public Backends.MambaStepWeights StepWeights(RmsNorm norm) => new(norm.Weight, norm.Eps, InProj.Weight, InProj.Bias,
        Conv1d.Weight, Conv1d.Bias, XProj!.Weight, DtProj!.Weight, DtProj.Bias!, ALog, D, OutProj.Weight, OutProj.Bias);

    public override Tensor Step(Tensor h, MambaLayerState state)
    {
        int e = Config.DInner, n = Config.DState, r = Config.DtRank;
        var xz = F.LinearSplit(h, InProj.Weight, InProj.Bias, e, e);
        var x = F.CausalConv1dStep(xz[0], state.ConvState, Conv1d.Weight, Conv1d.Bias, silu: true);
        Tensor delta, b, c, deltaBias;
        if (Config.Selective)
        {
            var parts = RmsNormed(F.SplitLastAxis(XProj!.Forward(x), r, n, n));
            delta = F.Linear(parts[0], DtProj!.Weight);
            (b, c, deltaBias) = (parts[1], parts[2], DtProj.Bias!);
        }
        else (delta, b, c, deltaBias) = (Tensor.Zeros(x.Shape, DType.F32, h.Device), B!, C!, DtBias!);
        var y = F.SelectiveScanStep(x, delta, StepA(), b, c, state.SsmState, Config.Selective, D, xz[1], deltaBias, deltaSoftplus: true);
        return OutProj.Forward(y);
    }
}
