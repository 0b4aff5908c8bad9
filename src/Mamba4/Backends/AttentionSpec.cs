using Mamba4.Tensors;

namespace Mamba4.Backends;

/// <summary>
/// What one multi-head attention call computes (IBackend.AttentionForward / AttentionBackward); q, k, v, y are
/// [batch, L, Heads·dHead], head h owning columns h·dHead … (h+1)·dHead − 1.
/// <list type="bullet">
/// <item><see cref="Causal"/>: query i sees keys j ≤ i; false: every query sees all L keys (Transformer encoders).</item>
/// <item><see cref="KeyPadding"/>: [batch, L] I64 item ids, 0 = padding — RecBole's additive mask: causal, 0 where
/// j ≤ i and ids[b, j] ≠ 0, else −10000 (a query with no visible key attends softly to every key, as in RecBole);
/// non-causal (BERT4Rec's bidirectional mask), −10000 where ids[b, j] = 0.</item>
/// <item><see cref="DropoutP"/> &gt; 0: dropout on the probabilities (RecBole's attn_dropout): weight p_ij is kept, scaled by
/// 1/(1 − p), iff SplitMix64(<see cref="Seed"/>, ((b·Heads + h)·L + i)·L + j) ≥ p·2⁶⁴, so the backward regenerates the mask.</item>
/// </list>
/// </summary>
public readonly record struct AttentionSpec(int Heads, bool Causal = true, Tensor? KeyPadding = null, float DropoutP = 0f, ulong Seed = 0)
{
    public bool HasDropout => DropoutP > 0f;
}
