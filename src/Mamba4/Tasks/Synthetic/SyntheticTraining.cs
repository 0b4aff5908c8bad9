using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.Synthetic;

/// <summary>Sizes of a synthetic-task run (the CLI's defaults finish in a few minutes on 2 cores).</summary>
public sealed record SyntheticOptions
{
    public string Task { get; init; } = "selective-copying";
    /// <summary>Region length (selective copying, default 32) or sequence length (induction heads, default 64); 0 = the default.</summary>
    public int Length { get; init; }
    public int DModel { get; init; } = 64;
    public int Layers { get; init; } = 2;
    public int DState { get; init; } = 16;
    public int DConv { get; init; } = 4;
    public int Expand { get; init; } = 2;
    public bool Selective { get; init; } = true;
    /// <summary>Δ's initial range (time_step_min/max: dt_bias is drawn so that Δ is log-uniform in it), as MambaConfig's.</summary>
    public double DtMin { get; init; } = 0.001;
    public double DtMax { get; init; } = 0.1;
    /// <summary>The in-tree GPT (learned absolute positions, d_model/16 heads) instead of Mamba, same width and depth.</summary>
    public bool Transformer { get; init; }
    public int Batch { get; init; } = 32;
    /// <summary>Induction heads: where training sequences put the first special token (uniform, early: the first 16 positions, mixed: half each).</summary>
    public InductionTrigger Trigger { get; init; } = InductionTrigger.Uniform;
    /// <summary>
    /// Training-time state passing (Buitrago Ruiz &amp; Gu 2025): this share of each batch's sequences starts its SSM scans from
    /// the final states the same rows reached in the previous step (detached); 0 = off. Mamba only.
    /// </summary>
    public double StatePassing { get; init; }
    /// <summary>
    /// Induction heads with state passing: the chance that a continuing row's sequence holds (no special token, no query,
    /// no loss), so that a later query of that row asks for a key written one or more sequences before (see
    /// <see cref="Synthetic.StatePassing"/>), from the first evaluation at ≥ 99 % on (the task is learnt on short
    /// distances first); 0 = off.
    /// </summary>
    public double Hold { get; init; }

    public void Validate()
    {
        ModelLimits.Check("--d-model", DModel, ModelLimits.Width);
        ModelLimits.Check("--layers", Layers, ModelLimits.Layers);
        ModelLimits.Check("--d-state", DState, ModelLimits.StateSize);
        ModelLimits.Check("--d-conv", DConv, ModelLimits.ConvKernel);
        ModelLimits.Check("--expand", Expand, ModelLimits.Expand);
        ModelLimits.Check("--batch", Batch, (int)Trainer.MaxTokensPerStep);
        if (!(DtMin > 0 && DtMin <= DtMax && DtMax < 1e3)) throw new ArgumentException($"--dt-min/--dt-max: need 0 < dt-min ≤ dt-max < 1000, got {DtMin}, {DtMax}");
        if (!(StatePassing is >= 0 and <= 1)) throw new ArgumentException($"--state-passing must be a share from 0 to 1, got {StatePassing}");
        if (StatePassing > 0 && Transformer) throw new ArgumentException("--state-passing: only a Mamba has a state to pass (not --model transformer)");
        if (StatePassing > 0 && Math.Round(StatePassing * Batch) < 1)
            throw new ArgumentException($"--state-passing {StatePassing} of --batch {Batch} is no row: the share must give at least one continuing sequence (≥ {0.5 / Batch:G3})");
        if (StatePassing is > 0 and < 1 && Math.Round(StatePassing * Batch) >= Batch)
            throw new ArgumentException($"--state-passing {StatePassing} of --batch {Batch} continues every row (none starts from zero, as every evaluation does): use a larger --batch, or --state-passing 1 to mean it");
        if (!(Hold is >= 0 and < 1)) throw new ArgumentException($"--hold must be a share from 0 to below 1, got {Hold}");
        if (Hold > 0 && Transformer) throw new ArgumentException("--hold: a Mamba only (the held keys live in its passed states)");
        if (Hold > 0 && (StatePassing == 0 || Task != "induction-heads")) throw new ArgumentException("--hold: needs induction heads with --state-passing (the held keys live in the passed states)");
        if (Trigger != InductionTrigger.Uniform && Task != "induction-heads") throw new ArgumentException($"--trigger: only induction heads has a trigger token (task is {Task})");
        if (Length is < 0 or > ModelLimits.Positions) throw new ArgumentException($"--length must be from 1 to {ModelLimits.Positions} (or 0 for the task's default), got {Length}");
        Trainer.CheckTokensPerStep(Batch, SyntheticTraining.CreateTask(Task, Length).Length, "sequence length");
    }
}

/// <summary>Builds the model, loss and evaluation of a synthetic task on top of <see cref="Trainer"/>.</summary>
public static class SyntheticTraining
{
    public static readonly string[] Tasks = ["selective-copying", "induction-heads"];

    public static ISequenceTask CreateTask(string name, int length = 0, InductionTrigger trigger = InductionTrigger.Uniform) => name switch
    {
        "selective-copying" => new SelectiveCopying(regionLength: length > 0 ? length : 32),
        "induction-heads" => new InductionHeads(length: length > 0 ? length : 256, trigger: trigger),
        _ => throw new ArgumentException($"unknown task '{name}' (expected one of: {string.Join(", ", Tasks)})"),
    };

    /// <summary>
    /// Each task's defaults. Selective copying: the quick start (a few minutes on 2 cores). Induction heads: the Mamba
    /// paper's setting (appendix E.1: length 2^8, vocabulary 16, 2 layers of d_model 64, Adam without weight decay at a
    /// constant learning rate) on the budget of two CPU cores, trained with state passing and held keys, and Adam's β2 at
    /// 0.95 so that a sudden gradient after thousands of near-zero ones cannot throw the solved model away — see
    /// docs/induction-heads.md.
    /// </summary>
    public static (SyntheticOptions Model, TrainerOptions Trainer) Preset(string task) => task switch
    {
        "induction-heads" => (new SyntheticOptions { Task = task, Batch = InductionBatch, StatePassing = InductionStatePassing, Hold = InductionHold },
            new TrainerOptions { Steps = InductionSteps, LearningRate = InductionLearningRate, WarmupSteps = 0, MinLearningRateRatio = 1, WeightDecay = 0, AdamBeta2 = InductionAdamBeta2, EvalEvery = 250 }),
        _ => (new SyntheticOptions { Task = task }, new TrainerOptions { Steps = 2000, LearningRate = 5e-3f, WarmupSteps = 50 }),
    };

    private const int InductionBatch = 32;
    private const long InductionSteps = 8000;
    // Held keys over state passing (docs/induction-heads.md, "The key is kept, then misread"); at β2 0.999 a hold of 0.9
    // collapsed one seed in a loss spike ("Adam's β2"), at 0.95 a sudden gradient moves a weight by at most ~0.45 × lr.
    private const double InductionStatePassing = 0.9, InductionHold = 0.9;
    private const float InductionLearningRate = 5e-3f, InductionAdamBeta2 = 0.95f;

    /// <summary>
    /// The Transformer's learning rate as a fraction of the run's: the paper trained attention at 2e-4 and Mamba at 1e-3
    /// ("the attention models did not learn at 1e-3"), so the GPT twin gets the same ratio.
    /// </summary>
    public const float TransformerLearningRateRatio = 0.2f;

    /// <summary>The trainer options of one run: the settings', with the Transformer's learning rate scaled.</summary>
    public static TrainerOptions TrainerFor(SyntheticOptions o, TrainerOptions t) =>
        o.Transformer ? t with { LearningRate = t.LearningRate * TransformerLearningRateRatio } : t;

    public static MambaConfig ModelConfig(SyntheticOptions o, ISequenceTask task) => new()
    {
        DModel = o.DModel, NLayer = o.Layers, DState = o.DState, DConv = o.DConv, Expand = o.Expand,
        VocabSize = task.VocabSize, Selective = o.Selective, TieEmbeddings = true, DtMin = o.DtMin, DtMax = o.DtMax,
    };

    /// <summary>The GPT twin: same width, depth and vocabulary, positions enough for <paramref name="maxLength"/>.</summary>
    public static GptConfig TransformerConfig(SyntheticOptions o, ISequenceTask task, int maxLength) => new()
    {
        DModel = o.DModel, NLayer = o.Layers, NHead = Math.Max(1, o.DModel / 16), VocabSize = task.VocabSize, MaxPositions = maxLength,
    };

    /// <summary>The model of one run: Mamba (selective or not) or the Transformer.</summary>
    public static ICausalLanguageModel CreateModel(SyntheticOptions o, ISequenceTask task, int seed) =>
        o.Transformer ? new GptLM(TransformerConfig(o, task, TransformerPositions(task)), seed) : new MambaLM(ModelConfig(o, task), seed);

    /// <summary>Positions the Transformer is built with: up to 16× the training length (the longest it is evaluated at).</summary>
    public static int TransformerPositions(ISequenceTask task) =>
        (int)Math.Min(ModelLimits.Positions, (long)task.Length * (task is InductionHeads ? TransformerMaxScale : 64));

    /// <summary>The longest Transformer evaluation, as a multiple of the training length (its cost grows with L²).</summary>
    public const int TransformerMaxScale = 16;

    /// <summary>Which generated batch micro-batch <paramref name="micro"/> of <paramref name="step"/> trains on: each its own
    /// (with --accumulate k a step sums k different batches), and the step's own index when there is one micro-batch.</summary>
    public static long BatchIndex(long step, int micro, int accumulate) => step * accumulate + micro;

    /// <summary>
    /// The batch of <paramref name="step"/> (a function of seed and step only) and its mean cross-entropy over scored positions;
    /// with <paramref name="passing"/>, its first rows continue from the states the previous call left.
    /// </summary>
    public static (Tensor Loss, long Tokens) Loss(ICausalLanguageModel model, ISequenceTask task, long seed, long step, int batch, StatePassing? passing = null)
    {
        var (inputs, targets) = task.Sample(SplitMixRandom.ForStep(seed, step), batch);
        int t = task.Length;
        var holding = passing is { Hold: > 0, Holding: true } ? task as InductionHeads : null;
        if (holding is not null)
        {
            passing!.RestartIfNotFinite();   // before the held keys are chosen: a restart forgets them
            passing.HoldAndRecall(inputs, targets, t, holding.Vocab, SplitMixRandom.ForStep(seed, step, stream: 11));
        }
        var ids = Tensor.From(inputs, batch, t);
        var logits = passing is not null ? passing.Logits(ids, carriedStatesChecked: holding is not null) : model.Logits(ids);
        return (F.CrossEntropy(logits, Tensor.From(targets, batch, t)), (long)batch * t);
    }

    /// <summary>Fraction of scored tokens predicted correctly (arg-max) on held-out samples, at <paramref name="scale"/>× the training length.</summary>
    public static double Accuracy(ICausalLanguageModel icm, ISequenceTask task, long seed, int scale = 1, int samples = 256, int batch = 32)
    {
        var model = icm.AsModule;
        model.Eval();
        using var _ = GradMode.NoGrad();
        long correct = 0, total = 0;
        int t = task.LengthFor(scale), v = task.VocabSize;
        batch = Math.Max(1, Math.Min(batch, Math.Max(1, 16384 / t)));
        for (int done = 0, i = 0; done < samples; done += batch, i++)
        {
            int n = Math.Min(batch, samples - done);
            // Evaluation data: a stream of its own, never seen in training.
            var (inputs, targets) = task.Sample(SplitMixRandom.ForStep(seed, i, stream: 7_000 + scale), n, scale);
            using var scope = new TensorScope();
            var output = icm.Logits(Tensor.From(inputs, n, t));
            Span<float> logits = output.Device.IsCpu ? output.AsSpan<float>() : output.ToFloatArray();
            for (long p = 0; p < targets.Length; p++)
            {
                if (targets[p] < 0) continue;
                var row = logits.Slice((int)(p * v), v);
                int best = 0;
                for (int k = 1; k < v; k++) if (row[k] > row[best]) best = k;
                correct += best == targets[p] ? 1 : 0;
                total++;
            }
        }
        model.Train();
        return total == 0 ? double.NaN : correct / (double)total;
    }
}

/// <summary>
/// Training-time state passing (Buitrago Ruiz &amp; Gu 2025, "Understanding and improving length generalization in recurrent
/// models"): the first <see cref="Rows"/> sequences of every batch start each layer's SSM scan from the final state the same
/// row reached in the previous batch (detached: no gradient crosses steps), so a row's chain of states runs through every
/// step of the run (up to steps × length tokens) and training sees the states of long sequences at the cost of short ones;
/// the other rows start from zero. A continuing row is the previous one's sequence carried on (conv window and SSM state),
/// cut from the tape at the boundary. The states live only in memory: a resumed run starts its chains from zero again.
/// </summary>
public sealed class StatePassing : IDisposable
{
    private readonly MambaLM _model;
    private readonly Inference.MambaState _state;

    public StatePassing(MambaLM model, int batch, double share, double hold = 0)
    {
        _model = model;
        Rows = (int)Math.Round(share * batch);
        Hold = hold;
        _state = model.NewState(batch);
        foreach (var layer in _state.Layers) layer.ForwardContinues = true;
        _heldKey = new int[Rows];
        _keyIsNextFirst = new bool[Rows];
        Array.Fill(_heldKey, -1);
    }

    /// <summary>Induction heads: the chance that a continuing row's sequence holds (see <see cref="HoldAndRecall"/>).</summary>
    public double Hold { get; }
    /// <summary>
    /// Whether sequences hold and recall now: set by the run once an evaluation at the training length reaches 99 %
    /// (long-distance recalls from the first step keep the task from being found at all, as the early trigger does).
    /// A resumed run sets it again at its first such evaluation.
    /// </summary>
    public bool Holding { get; set; }

    // Per continuing row, the token that followed its most recent special token (−1: none yet), or, when its last
    // sequence ended with the (query) special token, the first token of the next sequence.
    private readonly int[] _heldKey;
    private readonly bool[] _keyIsNextFirst;

    /// <summary>
    /// Held keys (induction heads): each continuing row's sequence of this step, [batch, t] in <paramref name="inputs"/>,
    /// becomes with chance <see cref="Hold"/> a *hold* sequence — its special tokens replaced by ordinary ones, no target —
    /// and otherwise, with chance ½, a *recall* sequence — its special tokens but the final query replaced, and the target
    /// the key the row holds: the token after its most recent special token, written one or more sequences before (when
    /// the previous sequence ended with the query, that is this sequence's first token). Otherwise it stays as drawn. So the
    /// rule of the task (the query asks for the token after the previous special token) holds over the row's whole stream,
    /// and the distance from key to query grows to many training lengths. Fresh rows are untouched.
    /// </summary>
    public void HoldAndRecall(long[] inputs, long[] targets, int t, int vocab, SplitMixRandom rng)
    {
        for (int r = 0; r < Rows; r++)
        {
            var row = inputs.AsSpan(r * t, t);
            double u = rng.NextDouble();
            bool hold = u < Hold, recall = !hold && rng.NextDouble() < 0.5;
            if (hold || recall)
            {
                for (int i = 0; i < (hold ? t : t - 1); i++)
                    if (row[i] == vocab) row[i] = rng.Next(vocab);
                int held = _keyIsNextFirst[r] ? (int)row[0] : _heldKey[r];
                targets[r * t + t - 1] = hold || held < 0 ? -100 : held;   // a recall with no key held yet is not scored
            }
            // what the row holds after this sequence: the token after its last special token
            int last = row.LastIndexOf((long)vocab);
            if (last == t - 1) _keyIsNextFirst[r] = true;
            else if (last >= 0) (_heldKey[r], _keyIsNextFirst[r]) = ((int)row[last + 1], false);
            else if (_keyIsNextFirst[r]) (_heldKey[r], _keyIsNextFirst[r]) = ((int)row[0], false);
        }
    }

    /// <summary>Rows of each batch that continue from the previous batch's final states.</summary>
    public int Rows { get; }

    /// <summary>Logits of <paramref name="ids"/> [batch, L]: rows below <see cref="Rows"/> from the carried states, the rest from zero; the final states are kept.</summary>
    /// <param name="carriedStatesChecked">The caller ran <see cref="RestartIfNotFinite"/> for this step already (one
    /// read-back a step, not two).</param>
    public Tensor Logits(Tensor ids, bool carriedStatesChecked = false)
    {
        int batch = _state.Batch;
        if (ids.Shape[0] != batch) throw new ArgumentException($"state passing: the batch has {ids.Shape[0]} rows, the carried states {batch}");
        if (!carriedStatesChecked) RestartIfNotFinite();
        if (Rows < batch) ZeroRows(Rows, batch - Rows);
        _state.Position = 0;   // tokens seen are not counted across steps (no position embeddings depend on them here)
        return _model.Forward(ids, _state);
    }

    /// <summary>
    /// A skipped (non-finite) step may have left NaN/Inf in the carried states, which would poison every later step: the
    /// continuing rows then start again from zero (and hold no key).
    /// </summary>
    public void RestartIfNotFinite()
    {
        if (CarriedStatesFinite()) return;
        ResetCount++;
        ZeroRows(0, Rows);
        Array.Fill(_heldKey, -1);
        Array.Fill(_keyIsNextFirst, false);
    }

    /// <summary>How often the carried states were non-finite and started again from zero.</summary>
    public int ResetCount { get; private set; }

    /// <summary>Every layer's conv window and SSM state.</summary>
    private IEnumerable<Tensor> States => _state.Layers.SelectMany(layer => new[] { layer.SsmState, layer.ConvState });

    /// <summary>Whether the continuing rows' states are all finite: each state's sum into one small buffer, read back once.</summary>
    private bool CarriedStatesFinite()
    {
        var states = States.ToArray();
        using var sums = Tensor.Empty(new Shape(states.Length), DType.F32, states[0].Device);
        for (int i = 0; i < states.Length; i++)
        {
            using var rows = states[i].Slice(0, Rows).Persist();
            using var sum = sums.ViewOf(new Shape(), (long)i * sizeof(float));
            rows.Backend.Sum(rows, sum);
        }
        return sums.ToFloatArray().All(float.IsFinite);
    }

    private void ZeroRows(int start, int count)
    {
        foreach (var t in States)
            using (var rows = t.Slice(start, count).Persist())
                rows.Backend.Fill(rows, 0f);
    }

    public void Dispose() => _state.Dispose();
}
