using Mamba4.Tensors;

namespace Mamba4.Autograd;

/// <summary>
/// Activation checkpointing (torch.utils.checkpoint): a segment of ops runs without recording, so its intermediates are
/// freed as soon as it returns; one node stands for it, and its backward runs the segment again with recording and
/// backpropagates the output's gradient through that rerun (gradients reach the segment's inputs and parameters as if
/// it had been recorded). Memory: the segment's inputs and output instead of everything in between; time: one more
/// forward of the segment. The segment must compute the same values when run again (no randomness, no side effects,
/// inputs unchanged) and return a tensor it made.
/// </summary>
public static class Checkpoint
{
    [ThreadStatic] private static bool _rerunning;

    /// <summary>True while a segment runs again inside the backward: its last op may then skip computing a value only
    /// its node needs (mamba_ssm's inner function recomputes the conv and Δ but not the scan).</summary>
    public static bool IsRerunning => _rerunning;

    /// <param name="op">The node's name (errors, tape listings).</param>
    /// <param name="segment">The ops to run; it reads its inputs from its closure.</param>
    /// <param name="inputs">Every tensor the segment reads that may require a gradient: when none does (or under
    /// <see cref="GradMode.NoGrad"/>) the segment simply runs.</param>
    public static Tensor Run(string op, Func<Tensor> segment, params ReadOnlySpan<Tensor?> inputs)
    {
        if (!Tape.ShouldRecord(inputs)) return segment();
        Tensor y;
        bool rerunning = _rerunning;
        using (var scope = new TensorScope())
        {
            _rerunning = false;   // a checkpoint inside another's rerun runs its own first pass in full
            try { using (GradMode.NoGrad()) y = segment(); }
            finally { _rerunning = rerunning; }
            if (y.Scope != scope)
                throw new InvalidOperationException($"Checkpoint '{op}': the segment returned a tensor it did not make (an input, or one made outside it); return a new tensor (e.g. a copy)");
            scope.Keep(y);
        }
        Tape.Record(op, () =>
        {
            using var scope = new TensorScope();   // the rerun's intermediates and their gradients end here
            int start = Tape.Count;
            Tensor again;
            bool outer = _rerunning;
            _rerunning = true;
            try { using (GradMode.EnableGrad()) again = segment(); }
            finally { _rerunning = outer; }
            Tape.BackwardSegment(start, again, y.Grad!);
        }, y);
        return y;
    }
}
