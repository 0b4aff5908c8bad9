using Mamba4.Tensors;

namespace Mamba4.Backends;

/// <summary>
/// An optional capability: a backend that also runs the fused GRU recurrence (GRU4Rec's kernel), so that
/// <see cref="IBackend"/> carries no model-specific kernels. Ops ask for it with
/// <see cref="Backend.Require{T}(IBackend, string)"/>, which names the op and the backend when it is missing.
/// </summary>
public interface IGruBackend : IBackend
{
    /// <summary>
    /// The GRU recurrence (torch.nn.GRU, gates ordered r, z, n) given the input projection gi = x W_ihᵀ + b_ih
    /// [batch, L, 3H]; wHh [3H, H]; bHh [3H] and h0 [batch, H] optional (null: zero). Writes y [batch, L, H]
    /// (h_t for every t) and gates [batch, L, 4H] = (r, z, n, W_hn h_{t−1} + b_hn) per step, kept for the backward.
    /// </summary>
    void GruForward(Tensor gi, Tensor wHh, Tensor? bHh, Tensor? h0, Tensor y, Tensor gates);
    /// <summary>Backward through time from dy [batch, L, H]: overwrites dGi [batch, L, 3H], dWhh [3H, H], dBhh [3H] and dH0 [batch, H] (each optional where its input was).</summary>
    void GruBackward(Tensor wHh, Tensor? h0, Tensor y, Tensor gates, Tensor dy, Tensor dGi, Tensor dWhh, Tensor? dBhh, Tensor? dH0);
}
