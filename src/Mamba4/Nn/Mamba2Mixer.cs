using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// The Mamba-2 block (HF <c>Mamba2Mixer</c> / mamba_ssm <c>Mamba2</c>), parameter names as theirs: in_proj, conv1d,
/// dt_bias, A_log, D, norm.weight, out_proj. Shapes: b batch, l length, d d_model, e d_inner = h·p (h heads of
/// head_dim p), g n_groups, n d_state, c = e + 2·g·n conv channels.
/// <code>
/// z, xBC, dt = in_proj(hs).split(e, c, h)          (b, l, e), (b, l, c), (b, l, h)
/// xBC   = silu(conv1d(xBC))                        causal depthwise, kernel d_conv
/// x, B, C = xBC.split(e, g·n, g·n)                 viewed (b, l, h, p), (b, l, g, n), (b, l, g, n)
/// Δ     = clamp(softplus(dt + dt_bias), time_step_limit)         (h per step)
/// A     = −exp(A_log)                              (h)
/// y     = SSD(x, Δ, A, B, C) + D·x                 S_t = exp(Δ_t A) S_{t−1} + Δ_t x_t ⊗ B_t,  y_t = S_t C_t  (F.SsdScan)
/// out   = out_proj(gated_rmsnorm(y, z))            see <see cref="RmsNormGated"/>
/// </code>
/// The recurrent state: conv_state (b, c, d_conv − 1), ssm_state (b, h, p, n).
/// </summary>
public sealed class Mamba2Mixer : SsmMixer
{
    public Mamba2Mixer(MambaConfig config, Random rng)
    {
        Config = config;
        int d = config.DModel, e = config.DInner, h = config.Heads, c = config.ConvDim;
        InProj = Child("in_proj", new Linear(d, e + c + h, config.Bias, rng));
        Conv1d = Child("conv1d", new CausalConv1d(c, config.DConv, config.ConvBias, rng));
        // mamba_ssm init: dt_bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max] floored; A = U[1, 16] per head; D = 1.
        DtBias = Parameter("dt_bias", Tensor.Empty(new Shape(h)).Persist());
        var bias = DtBias.AsSpan<float>();
        double lo = Math.Log(config.DtMin), hi = Math.Log(config.DtMax);
        for (int i = 0; i < h; i++)
        {
            double dt = Math.Max(Math.Exp(lo + rng.NextDouble() * (hi - lo)), config.DtInitFloor);
            bias[i] = (float)(dt + Math.Log(1 - Math.Exp(-dt)));   // inverse softplus
        }
        ALog = Parameter("A_log", Tensor.Empty(new Shape(h)).Persist());
        var aLog = ALog.AsSpan<float>();
        for (int i = 0; i < h; i++) aLog[i] = (float)Math.Log(1 + 15 * rng.NextDouble());
        D = Parameter("D", Init.Constant(new Shape(h), 1f));
        Norm = Child("norm", new RmsNormGated(e, config.NormGroups, config.NormBeforeGate, config.NormEpsilon));
        OutProj = Child("out_proj", new Linear(e, d, config.Bias, rng));
    }

    public MambaConfig Config { get; }
    public override Linear InProj { get; }
    public CausalConv1d Conv1d { get; }
    public Tensor DtBias { get; }
    public Tensor ALog { get; }
    public override Tensor D { get; }
    public RmsNormGated Norm { get; }
    public override Linear OutProj { get; }
    public override IEnumerable<Linear> Linears => [InProj, OutProj];

    // time_step_limit, the clamp of Δ (not time_step_min/max, DtMin/DtMax of the config, which only set dt_bias's init).
    private float DtLimitMin => (float)Config.TimeStepLimitMin;
    private float DtLimitMax => (float)Config.TimeStepLimitMax;

    public override Tensor Forward(Tensor hs, MambaLayerState? state = null, Tensor? residual = null)
    {
        var c = Config;
        int b = hs.Shape[0], l = hs.Shape[1], gn = c.NGroups * c.DState;
        var parts = F.LinearSplit(hs, InProj.Weight, InProj.Bias, c.DInner, c.ConvDim, c.Heads);
        var (z, xBC, dt) = (parts[0], parts[1], parts[2]);
        if (state is { ForwardContinues: true }) throw new NotSupportedException("Mamba-2: a forward that continues from the state (ForwardContinues) is not supported; the SSD scan starts from zero");
        if (state is not null) SaveConvState(xBC, state);
        var xbc = F.SplitLastAxis(Conv1d.Forward(xBC, silu: true), c.DInner, gn, gn);
        var (y, last) = F.SsdScan(
            F.Reshape(xbc[0], [b, l, c.Heads, c.HeadDim]), dt, A(),
            F.Reshape(xbc[1], [b, l, c.NGroups, c.DState]), F.Reshape(xbc[2], [b, l, c.NGroups, c.DState]),
            D, DtBias, dtSoftplus: true, DtLimitMin, DtLimitMax, Math.Min(c.ChunkSize, Math.Max(1, l)), returnLastState: state is not null);
        if (state is not null) state.SsmState.CopyFrom(last!);
        return OutProjection(Norm.Forward(F.Reshape(y, [b, l, c.DInner]), z), residual);
    }

    public override Tensor Step(Tensor hs, MambaLayerState state)
    {
        var c = Config;
        int b = hs.Shape[0], gn = c.NGroups * c.DState;
        var parts = F.LinearSplit(hs, InProj.Weight, InProj.Bias, c.DInner, c.ConvDim, c.Heads);
        var xBC = F.CausalConv1dStep(parts[1], state.ConvState, Conv1d.Weight, Conv1d.Bias, silu: true);
        var xbc = F.SplitLastAxis(xBC, c.DInner, gn, gn);
        var y = F.SsdScanStep(
            F.Reshape(xbc[0], [b, c.Heads, c.HeadDim]), parts[2], A(),
            F.Reshape(xbc[1], [b, c.NGroups, c.DState]), F.Reshape(xbc[2], [b, c.NGroups, c.DState]),
            state.SsmState, D, DtBias, dtSoftplus: true, DtLimitMin, DtLimitMax);
        return OutProj.Forward(Norm.Forward(F.Reshape(y, [b, c.DInner]), parts[0]));
    }

    private Tensor A() => F.Scale(F.Exp(ALog), -1f);
}
