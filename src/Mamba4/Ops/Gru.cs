using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// One GRU layer over a batch of sequences, torch.nn.GRU(batch_first=True) semantics. Weights as PyTorch
/// stores them: wIh [3H, In], wHh [3H, H], biases [3H], the three row blocks being the r, z and n gates:
///   r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)
///   z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
///   n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))
///   h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1},      h_{−1} = h0 (zero when absent)
/// The input projection for all steps is one Linear op (gi = x W_ihᵀ + b_ih); the recurrence is one fused op
/// whose backward runs through time (the math is in CpuBackend.Gru.cs). It keeps (r, z, n, W_hn h + b_hn) per step.
/// </summary>
public static partial class F
{
    /// <summary>x [batch, L, In] → y [batch, L, H], y[:, t] = h_t.</summary>
    public static Tensor Gru(Tensor x, Tensor wIh, Tensor wHh, Tensor? bIh = null, Tensor? bHh = null, Tensor? h0 = null)
    {
        const string op = "Gru";
        OpCheck.F32(op, "x", x);
        OpCheck.Rank(op, "x", x, 3);
        OpCheck.F32(op, "weight_ih", wIh);
        OpCheck.Rank(op, "weight_ih", wIh, 2);
        if (wIh.Shape[0] % 3 != 0 || wIh.Shape[0] == 0)
            throw new ArgumentException($"{op}: weight_ih must have 3·hidden rows (gates r, z, n), got {wIh.Shape}");
        if (wIh.Shape[1] != x.Shape[2])
            throw new ArgumentException($"{op}: x {x.Shape} has {x.Shape[2]} features but weight_ih {wIh.Shape} expects {wIh.Shape[1]}");
        var gi = F.Linear(x, wIh, bIh);
        return GruRecurrence(gi, wHh, bHh, h0);
    }

    /// <summary>The recurrence alone, from the input projection gi [batch, L, 3H] (= x W_ihᵀ + b_ih).</summary>
    public static Tensor GruRecurrence(Tensor gi, Tensor wHh, Tensor? bHh = null, Tensor? h0 = null)
    {
        const string op = "Gru";
        OpCheck.F32(op, "gi", gi);
        OpCheck.Rank(op, "gi", gi, 3);
        int batch = gi.Shape[0], len = gi.Shape[1], g3 = gi.Shape[2];
        if (g3 == 0 || g3 % 3 != 0) throw new ArgumentException($"{op}: gi must be [batch, L, 3·hidden], got {gi.Shape}");
        int h = g3 / 3;
        OpCheck.F32(op, "weight_hh", wHh);
        OpCheck.Shape(op, "weight_hh", wHh, g3, h);
        OpCheck.SameDevice(op, gi, wHh);
        if (bHh is not null)
        {
            OpCheck.F32(op, "bias_hh", bHh);
            OpCheck.Shape(op, "bias_hh", bHh, g3);
            OpCheck.SameDevice(op, gi, bHh);
        }
        if (h0 is not null)
        {
            OpCheck.F32(op, "h0", h0);
            OpCheck.Shape(op, "h0", h0, batch, h);
            OpCheck.SameDevice(op, gi, h0);
        }

        var backend = Backend.Require<IGruBackend>(gi.Backend, op);
        var y = Tensor.Empty(new Shape(batch, len, h), DType.F32, gi.Device);
        var gates = Tensor.Empty(new Shape(batch, len, 4 * h), DType.F32, gi.Device);
        backend.GruForward(gi, wHh, bHh, h0, y, gates);

        if (Tape.ShouldRecord(gi, wHh, bHh, h0))
            Tape.Record(op, () =>
            {
                var dGi = Tensor.Empty(gi.Shape, DType.F32, gi.Device);
                var dW = Tensor.Empty(wHh.Shape, DType.F32, gi.Device);
                var dB = bHh is { RequiresGrad: true } ? Tensor.Empty(bHh.Shape, DType.F32, gi.Device) : null;
                var dH0 = h0 is { RequiresGrad: true } ? Tensor.Empty(h0.Shape, DType.F32, gi.Device) : null;
                backend.GruBackward(wHh, h0, y, gates, y.Grad!, dGi, dW, dB, dH0);
                Tape.Accumulate(gi, dGi, owned: true);
                Tape.Accumulate(wHh, dW, owned: true);
                if (dB is not null) Tape.Accumulate(bHh!, dB, owned: true);
                if (dH0 is not null) Tape.Accumulate(h0!, dH0, owned: true);
            }, y);
        else gates.Dispose();
        return y;
    }
}
