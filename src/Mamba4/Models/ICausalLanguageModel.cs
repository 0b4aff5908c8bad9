using Mamba4.Nn;
using Mamba4.Ops;

namespace Mamba4.Models;

/// <summary>A next-token model over ids: (b, l) → logits (b, l, vocab). Mamba and the Transformer baseline both are.</summary>
public interface ICausalLanguageModel
{
    int VocabSize { get; }
    Tensor Logits(Tensor ids);
    /// <summary>Mean cross-entropy of the logits at every position against <paramref name="targets"/> (b, l) I64, −100
    /// ignored: <c>F.CrossEntropy(Logits(ids), targets)</c>; a model may fuse its head with the loss.</summary>
    Tensor CrossEntropy(Tensor ids, Tensor targets) => F.CrossEntropy(Logits(ids), targets);
    Module AsModule { get; }
}
