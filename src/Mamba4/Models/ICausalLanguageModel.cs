using Mamba4.Nn;

namespace Mamba4.Models;

/// <summary>A next-token model over ids: (b, l) → logits (b, l, vocab). Mamba and the Transformer baseline both are.</summary>
public interface ICausalLanguageModel
{
    int VocabSize { get; }
    Tensor Logits(Tensor ids);
    Module AsModule { get; }
}
