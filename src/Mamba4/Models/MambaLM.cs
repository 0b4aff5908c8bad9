using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>HF MambaBlock: h + mixer(RMSNorm(h)).</summary>
public sealed class MambaBlock : Module
{
    public MambaBlock(MambaConfig config, Random rng)
    {
        Norm = Child("norm", new Nn.RmsNorm(config.DModel, config.NormEpsilon));
        Mixer = Child("mixer", SsmMixer.Create(config, rng));
    }

    public Nn.RmsNorm Norm { get; }
    public SsmMixer Mixer { get; }

    public Tensor Forward(Tensor h, MambaLayerState? state = null) => F.Add(h, Mixer.Forward(Norm.Forward(h, Mixer.InputType(h)), state));

    /// <summary><see cref="Forward"/> written into h itself, without gradients, for a caller that owns h and needs it no more:
    /// the mixer's out_proj adds onto h (F.LinearAccumulate) and no pass adds the two.</summary>
    internal Tensor ForwardInPlace(Tensor h, MambaLayerState? state = null) => Mixer.Forward(Norm.Forward(h, Mixer.InputType(h)), state, residual: h);

    public Tensor Step(Tensor h, MambaLayerState state) => F.Add(h, Mixer.Step(Norm.Forward(h), state));
}

/// <summary>HF MambaModel: embeddings → layers → norm_f.</summary>
public sealed class MambaBackbone : Module
{
    public MambaBackbone(MambaConfig config, Random rng)
    {
        Embeddings = Child("embeddings", new Nn.Embedding(config.VocabSize, config.DModel, rng, std: config.InitializerRange));
        if (config.MaxPositionEmbeddings > 0)
            PositionEmbeddings = Child("position_embeddings", new Nn.Embedding(config.MaxPositionEmbeddings, config.DModel, rng, std: config.InitializerRange));
        Layers = Child("layers", new ModuleList<MambaBlock>(Enumerable.Range(0, config.NLayer).Select(_ => new MambaBlock(config, rng))));
        NormF = Child("norm_f", new Nn.RmsNorm(config.DModel, config.NormEpsilon));
    }

    public Nn.Embedding Embeddings { get; }
    public Nn.Embedding? PositionEmbeddings { get; }
    public ModuleList<MambaBlock> Layers { get; }
    public Nn.RmsNorm NormF { get; }
}

/// <summary>
/// The Hugging Face <c>MambaForCausalLM</c> (and <c>FalconMambaForCausalLM</c>, <c>Mamba2ForCausalLM</c>: the mixer
/// differs): parameter names backbone.embeddings.weight, backbone.layers.i.{norm, mixer.*}, backbone.norm_f.weight,
/// lm_head.weight (unless tied to the embeddings).
/// </summary>
public sealed class MambaLM : Module, ICausalLanguageModel
{
    int ICausalLanguageModel.VocabSize => Config.VocabSize;
    Tensor ICausalLanguageModel.Logits(Tensor ids) => Forward(ids);
    Module ICausalLanguageModel.AsModule => this;

    public MambaLM(MambaConfig config, int seed = 0)
    {
        config.Validate();
        Config = config;
        var rng = new Random(seed);
        Backbone = Child("backbone", new MambaBackbone(config, rng));
        LmHead = config.TieEmbeddings ? Backbone.Embeddings.Weight
            : Parameter("lm_head.weight", Init.Normal(rng, new Shape(config.VocabSize, config.DModel), 0, config.InitializerRange));
        // mamba_ssm MixerModel init: linear biases zero; out_proj rescaled by 1/√n_layer (prenorm residual).
        foreach (var layer in Backbone.Layers.Items)
        {
            var m = layer.Mixer;
            foreach (var lin in new[] { m.InProj, m.OutProj })
                if (lin.Bias is { } b) b.AsSpan<float>().Clear();
            if (config.RescalePrenormResidual && !Init.ValuesSkipped)   // skipped: the weights are about to be loaded
            {
                var w = m.OutProj.Weight.AsSpan<float>();
                float s = 1f / MathF.Sqrt(config.NLayer);
                for (int i = 0; i < w.Length; i++) w[i] *= s;
            }
        }
    }

    /// <summary>The parameters <see cref="MambaLM(MambaConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(MambaConfig c)
    {
        var s = new ParameterShapes().Embedding("backbone.embeddings", c.VocabSize, c.DModel);
        if (c.MaxPositionEmbeddings > 0) s.Embedding("backbone.position_embeddings", c.MaxPositionEmbeddings, c.DModel);
        for (int i = 0; i < c.NLayer; i++) s.RmsNorm($"backbone.layers.{i}.norm", c.DModel).MambaMixer($"backbone.layers.{i}.mixer", c);
        s.RmsNorm("backbone.norm_f", c.DModel);
        return c.TieEmbeddings ? s : s.Add("lm_head.weight", c.VocabSize, c.DModel);
    }

    /// <summary>
    /// Loads a Hugging Face Mamba directory: config.json and model.safetensors (or a sharded
    /// model.safetensors.index.json), F32/F16/BF16 weights converted to F32, on the CPU. The configuration is
    /// checked against the weight files' headers and the memory it needs before anything is allocated (see
    /// <see cref="ModelFiles.Load{T}"/>); a missing, unexpected or mis-shaped tensor fails with its name.
    /// </summary>
    public static MambaLM FromPretrained(string directory, ModelLoadOptions? options = null) =>
        Load(directory, MambaConfig.FromJsonFile(Path.Combine(directory, "config.json")), options, (options ?? ModelLoadOptions.Default).Device);

    /// <summary>As <see cref="FromPretrained"/> with the configuration already read, placing the model on <paramref name="device"/>.</summary>
    internal static MambaLM Load(string directory, MambaConfig config, ModelLoadOptions? options, Device device) =>
        // A tied checkpoint may still carry lm_head.weight (a copy of the embeddings).
        ModelFiles.Load(ModelFiles.WeightFiles(directory), Shapes(config), () => new MambaLM(config), options, device,
            ignorable: config.TieEmbeddings ? ["lm_head.weight"] : null);

    public MambaConfig Config { get; }
    public MambaBackbone Backbone { get; }

    /// <summary>Training memory for time (gradient checkpointing): every Mamba-1 mixer keeps only its in_proj outputs and
    /// gated scan output and reruns the rest in the backward (<see cref="MambaMixer.Recompute"/>); same gradients. Mamba-2
    /// mixers keep every intermediate.</summary>
    public bool Recompute
    {
        get => Backbone.Layers.Items.Any(l => l.Mixer is MambaMixer { Recompute: true });
        set { foreach (var layer in Backbone.Layers.Items) if (layer.Mixer is MambaMixer m) m.Recompute = value; }
    }
    public Tensor LmHead { get; }

    /// <summary>
    /// ids (b, l) I64 → logits (b, l, vocab). <paramref name="hiddenStates"/> receives what transformers 5.x
    /// returns as output_hidden_states for Mamba: the residual stream after each block, then norm_f of the last.
    /// </summary>
    public Tensor Forward(Tensor ids, MambaState? state = null, List<Tensor>? hiddenStates = null) =>
        F.Linear(Hidden(ids, state, hiddenStates), LmHead);

    /// <summary>ids (b, l) I64 → the final hidden state norm_f(h) (b, l, d_model): <see cref="Forward"/> without the head.</summary>
    public Tensor Hidden(Tensor ids, MambaState? state = null, List<Tensor>? hiddenStates = null)
    {
        if (ids.Rank != 2) throw new ArgumentException($"MambaLM: ids must be [batch, length], got {ids.Shape}");
        var h = Backbone.NormF.Forward(Blocks(Embed(ids, state?.Position ?? 0), state, hiddenStates));
        hiddenStates?.Add(h);
        if (state is not null) state.Position += ids.Shape[1];
        return h;
    }

    /// <summary>ids (b, l) → the logits of each sequence's last position (b, vocab): the head on that row only (a prefill's
    /// next-token logits; the [l × vocab] others are never made).</summary>
    public Tensor LastLogits(Tensor ids, MambaState? state = null) => F.Linear(F.LastPosition(Hidden(ids, state)), LmHead);

    /// <summary>
    /// The residual stream h (b, l, d_model) through every block (before norm_f), each leaving its state in
    /// <paramref name="state"/>. Without gradients a block's intermediates are freed as soon as it returns, and every block
    /// after the first adds onto the previous block's output in place (MambaBlock.ForwardInPlace; not <paramref name="h"/>
    /// itself, nor when <paramref name="hiddenStates"/> keeps them): a prefill holds one block's activations at a time.
    /// </summary>
    public Tensor Blocks(Tensor h, MambaState? state = null, List<Tensor>? hiddenStates = null)
    {
        bool free = !GradMode.IsEnabled && hiddenStates is null;
        for (int i = 0; i < Backbone.Layers.Count; i++)
        {
            if (!free) h = Backbone.Layers[i].Forward(h, state?.Layers[i]);
            else if (i == 0)
                using (var scope = new TensorScope()) h = scope.Keep(Backbone.Layers[i].Forward(h, state?.Layers[i]));
            else
                using (new TensorScope()) Backbone.Layers[i].ForwardInPlace(h, state?.Layers[i]);   // the previous block's output: ours
            hiddenStates?.Add(h);
        }
        return h;
    }

    private Tensor Embed(Tensor ids, long position)
    {
        var h = Backbone.Embeddings.Forward(ids);
        if (Backbone.PositionEmbeddings is { } pos)
        {
            int b = ids.Shape[0], l = ids.Rank == 2 ? ids.Shape[1] : 1;
            var p = new long[b * l];
            for (int i = 0; i < p.Length; i++) p[i] = Math.Min(position + i % l, pos.Weight.Shape[0] - 1);
            h = F.Add(h, pos.Forward(Tensor.From(p, ids.Shape.ToArray())));
        }
        return F.Dropout(h, Config.Dropout, DropoutSeed++, Training);
    }

    /// <summary>Mean next-token cross-entropy of logits[:, :-1] against ids[:, 1:] (without <paramref name="logits"/>:
    /// the head fused with the loss, <see cref="CrossEntropy"/>).</summary>
    public Tensor Loss(Tensor ids, Tensor? logits = null)
    {
        int b = ids.Shape[0], l = ids.Shape[1];
        var src = ids.ToInt64Array();
        var targets = new long[b * l];
        for (int i = 0; i < b; i++)
            for (int t = 0; t < l; t++) targets[i * l + t] = t + 1 < l ? src[i * l + t + 1] : -100;
        var target = Tensor.From(targets, b, l);
        return logits is null ? CrossEntropy(ids, target) : F.CrossEntropy(logits, target, ignoreIndex: -100);
    }

    /// <summary>Mean cross-entropy of the head's logits against <paramref name="targets"/> (b, l), −100 ignored, with the
    /// head fused into the loss (<see cref="F.LinearCrossEntropy"/>: the [tokens × vocab] logits are never held whole).</summary>
    public Tensor CrossEntropy(Tensor ids, Tensor targets) => F.LinearCrossEntropy(Hidden(ids), LmHead, targets);

    /// <summary>A fresh zero state for <paramref name="batch"/> streams.</summary>
    public MambaState NewState(int batch) => new(Config.NLayer, batch, Config, LmHead.Device);

    /// <summary>One token per stream: ids (b) → logits (b, vocab); O(1) in the tokens already seen.</summary>
    public Tensor Step(Tensor ids, MambaState state) => Step(ids, state, null);

    /// <summary>
    /// One token per stream: ids (b) → logits (b, vocab), and with <paramref name="greedyIds"/> (I64 [b] on the model's
    /// device) each stream's arg-max written there, −1 where a logit is NaN or ±∞ (F.MambaHeadStep), so that greedy
    /// decoding on a GPU reads back ids, not logits. On a GPU without gradients (<see cref="UsesFusedStep"/>) Mamba-1
    /// layers run the fused step (F.MambaStep); Mamba-2, Falcon-Mamba and the time-invariant mixer keep the unfused ops.
    /// </summary>
    public Tensor Step(Tensor ids, MambaState state, Tensor? greedyIds)
    {
        var h = Embed(ids, state.Position);
        bool fused = UsesFusedStep;
        for (int i = 0; i < Backbone.Layers.Count; i++)
        {
            var layer = Backbone.Layers[i];
            h = fused && layer.Mixer is MambaMixer { FusedStepSupported: true } m
                ? F.MambaStep(h, m.StepWeights(layer.Norm), state.Layers[i].ConvState, state.Layers[i].SsmState, NextInProj(i))
                : layer.Step(h, state.Layers[i]);
        }
        state.Position++;
        if (fused || greedyIds is not null)
            using (Autograd.GradMode.NoGrad())
                return F.MambaHeadStep(h, Backbone.NormF.Weight, Backbone.NormF.Eps, LmHead, greedyIds);
        return F.Linear(Backbone.NormF.Forward(h), LmHead);
    }

    /// <summary>The in_proj weight of the Mamba-1 layer after layer <paramref name="i"/> (its fused step asks the GPU's cache
    /// for it), or null.</summary>
    private Tensor? NextInProj(int i) =>
        i + 1 < Backbone.Layers.Count && Backbone.Layers[i + 1].Mixer is MambaMixer next ? next.InProj.Weight : null;

    /// <summary>Whether <see cref="Step(Tensor, MambaState, Tensor?)"/> runs the fused kernels: the model on a GPU whose
    /// backend has them, no gradients recorded, and <see cref="Backends.EngineSettings.CudaFusedStep"/> on.</summary>
    public bool UsesFusedStep => !LmHead.Device.IsCpu && !Autograd.GradMode.IsEnabled && Backends.Backend.Settings.CudaFusedStep
                                 && Backends.Backend.For(LmHead.Device) is Backends.IMambaStepBackend;
}
