using System.Text.Json.Nodes;
using Mamba4.Backends;
using Mamba4.IO;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes of the GPT-style Transformer baseline.</summary>
public sealed record GptConfig
{
    public int DModel { get; init; } = 256;
    public int NLayer { get; init; } = 4;
    public int NHead { get; init; } = 4;
    public int VocabSize { get; init; } = 256;
    public int MaxPositions { get; init; } = 1024;
    public float Dropout { get; init; }
    public float NormEpsilon { get; init; } = 1e-5f;

    public void Validate()
    {
        ModelLimits.Check("GPT config: d_model", DModel, ModelLimits.Width);
        ModelLimits.Check("GPT config: n_layer", NLayer, ModelLimits.Layers);
        ModelLimits.Check("GPT config: n_head", NHead, ModelLimits.Heads);
        ModelLimits.Check("GPT config: vocab", VocabSize, ModelLimits.Vocabulary);
        ModelLimits.Check("GPT config: positions", MaxPositions, ModelLimits.Positions);
        if (DModel % NHead != 0) throw new ArgumentException($"GPT config: d_model {DModel} must be a multiple of n_head {NHead}");
    }

    /// <summary>A config.json with model_type "gpt" (see <see cref="ConfigReader"/> for its errors).</summary>
    public static GptConfig FromConfig(ConfigReader r)
    {
        int Required(int max, string name) => r.Size(max, name) ?? throw r.Error($"field '{name}' is missing");
        var c = new GptConfig
        {
            DModel = Required(ModelLimits.Width, "n_embd"),
            NLayer = Required(ModelLimits.Layers, "n_layer"),
            NHead = Required(ModelLimits.Heads, "n_head"),
            VocabSize = Required(ModelLimits.Vocabulary, "vocab_size"),
            MaxPositions = Required(ModelLimits.Positions, "n_positions"),
            Dropout = r.Probability("dropout") ?? 0f,
            NormEpsilon = (float)(r.Positive("layer_norm_epsilon") ?? 1e-5),
        };
        if (c.DModel % c.NHead != 0) throw r.Error($"field 'n_embd' ({c.DModel}) must be a multiple of field 'n_head' ({c.NHead})");
        return c;
    }

    public JsonObject ToJson() => new()
    {
        ["model_type"] = "gpt", ["n_embd"] = DModel, ["n_layer"] = NLayer, ["n_head"] = NHead,
        ["vocab_size"] = VocabSize, ["n_positions"] = MaxPositions, ["dropout"] = Dropout, ["layer_norm_epsilon"] = NormEpsilon,
    };
}

/// <summary>GPT-2 style block (pre-LayerNorm): x + attn(ln_1(x)), then x + mlp(ln_2(x)), GELU MLP of 4·d.</summary>
public sealed class GptBlock : Module
{
    public GptBlock(GptConfig c, Random rng)
    {
        Ln1 = Child("ln_1", new Nn.LayerNorm(c.DModel, c.NormEpsilon));
        CAttn = Child("attn.c_attn", new Nn.Linear(c.DModel, 3 * c.DModel, true, rng));
        CProj = Child("attn.c_proj", new Nn.Linear(c.DModel, c.DModel, true, rng));
        Ln2 = Child("ln_2", new Nn.LayerNorm(c.DModel, c.NormEpsilon));
        CFc = Child("mlp.c_fc", new Nn.Linear(c.DModel, 4 * c.DModel, true, rng));
        MProj = Child("mlp.c_proj", new Nn.Linear(4 * c.DModel, c.DModel, true, rng));
        Heads = c.NHead;
        DropoutP = c.Dropout;
    }

    public Nn.LayerNorm Ln1 { get; }
    public Nn.Linear CAttn { get; }
    public Nn.Linear CProj { get; }
    public Nn.LayerNorm Ln2 { get; }
    public Nn.Linear CFc { get; }
    public Nn.Linear MProj { get; }
    public int Heads { get; }
    public float DropoutP { get; }

    public Tensor Forward(Tensor x, ref ulong seed, KvLayer? cache = null)
    {
        int d = x.Shape.Last;
        var qkv = F.LinearSplit(Ln1.Forward(x), CAttn.Weight, CAttn.Bias, d, d, d);
        if (cache is not null) cache.Append(qkv[1], qkv[2]);
        var a = F.Dropout(CProj.Forward(F.Attention(qkv[0], qkv[1], qkv[2], new AttentionSpec(Heads))), DropoutP, seed++, Training);
        x = F.Add(x, a);
        var m = F.Dropout(MProj.Forward(F.Gelu(CFc.Forward(Ln2.Forward(x)))), DropoutP, seed++, Training);
        return F.Add(x, m);
    }

    /// <summary>One token per stream with the KV cache: x (b, d) → (b, d).</summary>
    public Tensor Step(Tensor x, KvLayer cache)
    {
        int d = x.Shape.Last;
        var qkv = F.LinearSplit(Ln1.Forward(x), CAttn.Weight, CAttn.Bias, d, d, d);
        cache.Append(qkv[1], qkv[2]);
        var y = F.AttentionStep(qkv[0], cache.K, cache.V, cache.Length, Heads);
        x = F.Add(x, CProj.Forward(y));
        return F.Add(x, MProj.Forward(F.Gelu(CFc.Forward(Ln2.Forward(x)))));
    }
}

/// <summary>Keys and values of one layer for a batch of streams, [batch, capacity, d]; grows by one row per token.</summary>
public sealed class KvLayer(int batch, int capacity, int width, Device device) : IDisposable
{
    public Tensor K { get; } = Tensor.Zeros(new Shape(batch, capacity, width), DType.F32, device).Persist();
    public Tensor V { get; } = Tensor.Zeros(new Shape(batch, capacity, width), DType.F32, device).Persist();
    public int Length { get; private set; }
    public long Bytes => 2L * Length * K.Shape[0] * K.Shape[2] * sizeof(float);

    /// <summary>Appends k, v of shape (b, d) or (b, l, d).</summary>
    public void Append(Tensor k, Tensor v)
    {
        int b = K.Shape[0], w = K.Shape[2], l = k.Rank == 3 ? k.Shape[1] : 1;
        if (Length + l > K.Shape[1]) throw new InvalidOperationException($"KV cache full: {Length} + {l} positions exceed its capacity {K.Shape[1]}");
        using var k3 = k.Detach().Reshape(b, l, w);
        using var v3 = v.Detach().Reshape(b, l, w);
        for (int i = 0; i < b; i++)
        {
            using var kd = K.Slice(i, 1).Reshape(K.Shape[1], w);
            using var vd = V.Slice(i, 1).Reshape(K.Shape[1], w);
            using var ks = k3.Slice(i, 1).Reshape(l, w);
            using var vs = v3.Slice(i, 1).Reshape(l, w);
            using var kdRows = kd.Slice(Length, l);
            using var vdRows = vd.Slice(Length, l);
            kd.Backend.CopyColumns(ks, 0, kdRows, 0, w);
            vd.Backend.CopyColumns(vs, 0, vdRows, 0, w);
        }
        Length += l;
    }

    /// <summary>Forgets positions from <paramref name="length"/> on (rewinds every stream to that position).</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), $"cannot truncate a KV cache of {Length} positions to {length}");
        Length = length;
    }

    public void Dispose() { K.Dispose(); V.Dispose(); }
}

/// <summary>
/// GPT-style decoder LM — the Transformer baseline on the same engine: learned positions, pre-LayerNorm
/// blocks, causal attention, GELU MLP, tied output head. Names as nanoGPT (transformer.wte, transformer.h.i…).
/// </summary>
public sealed class GptLM : Module, ICausalLanguageModel
{
    int ICausalLanguageModel.VocabSize => Config.VocabSize;
    Tensor ICausalLanguageModel.Logits(Tensor ids) => Forward(ids);
    Module ICausalLanguageModel.AsModule => this;

    public GptLM(GptConfig config, int seed = 0)
    {
        config.Validate();
        Config = config;
        var rng = new Random(seed);
        Wte = Child("transformer.wte", new Nn.Embedding(config.VocabSize, config.DModel, rng, std: 0.02));
        Wpe = Child("transformer.wpe", new Nn.Embedding(config.MaxPositions, config.DModel, rng, std: 0.02));
        Blocks = Child("transformer.h", new ModuleList<GptBlock>(Enumerable.Range(0, config.NLayer).Select(_ => new GptBlock(config, rng))));
        LnF = Child("transformer.ln_f", new Nn.LayerNorm(config.DModel, config.NormEpsilon));
        // GPT-2 init: weights N(0, 0.02), biases 0, residual projections scaled by 1/√(2·n_layer).
        foreach (var b in Blocks.Items)
            foreach (var lin in new[] { b.CAttn, b.CProj, b.CFc, b.MProj })
            {
                double std = lin == b.CProj || lin == b.MProj ? 0.02 / Math.Sqrt(2 * config.NLayer) : 0.02;
                using (var n = Init.Normal(rng, lin.Weight.Shape, 0, std)) n.AsSpan<float>().CopyTo(lin.Weight.AsSpan<float>());
                lin.Bias!.AsSpan<float>().Clear();
            }
    }

    /// <summary>The parameters <see cref="GptLM(GptConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(GptConfig c)
    {
        int d = c.DModel;
        var s = new ParameterShapes().Embedding("transformer.wte", c.VocabSize, d).Embedding("transformer.wpe", c.MaxPositions, d);
        for (int i = 0; i < c.NLayer; i++)
            s.LayerNorm($"transformer.h.{i}.ln_1", d).Linear($"transformer.h.{i}.attn.c_attn", d, 3 * d).Linear($"transformer.h.{i}.attn.c_proj", d, d)
             .LayerNorm($"transformer.h.{i}.ln_2", d).Linear($"transformer.h.{i}.mlp.c_fc", d, 4 * d).Linear($"transformer.h.{i}.mlp.c_proj", 4 * d, d);
        return s.LayerNorm("transformer.ln_f", d);
    }

    public GptConfig Config { get; }
    public Nn.Embedding Wte { get; }
    public Nn.Embedding Wpe { get; }
    public ModuleList<GptBlock> Blocks { get; }
    public Nn.LayerNorm LnF { get; }

    /// <summary>ids (b, l) → logits (b, l, vocab). With an empty <paramref name="cache"/>, also fills it (prefill).</summary>
    public Tensor Forward(Tensor ids, KvCache? cache = null) => F.Linear(Hidden(ids, cache), Wte.Weight);

    /// <summary>ids (b, l) → the final hidden state ln_f(x) (b, l, d_model): <see cref="Forward"/> without the head.</summary>
    public Tensor Hidden(Tensor ids, KvCache? cache = null)
    {
        int b = ids.Shape[0], l = ids.Shape[1];
        if (l > Config.MaxPositions) throw new ArgumentException($"GptLM: sequence length {l} exceeds n_positions {Config.MaxPositions}");
        var pos = new long[b * l];
        for (int i = 0; i < pos.Length; i++) pos[i] = i % l;
        var x = F.Dropout(F.Add(Wte.Forward(ids), Wpe.Forward(Tensor.From(pos, b, l))), Config.Dropout, DropoutSeed++, Training);
        var seed = DropoutSeed;
        for (int i = 0; i < Blocks.Count; i++) x = Blocks[i].Forward(x, ref seed, cache?.Layers[i]);
        DropoutSeed = seed;
        return LnF.Forward(x);
    }

    public KvCache NewCache(int batch, int capacity) =>
        new(Enumerable.Range(0, Config.NLayer).Select(_ => new KvLayer(batch, capacity, Config.DModel, Wte.Weight.Device)).ToArray());

    /// <summary>One token per stream: ids (b) → logits (b, vocab); cost grows with the tokens in the cache.</summary>
    public Tensor Step(Tensor ids, KvCache cache)
    {
        int b = ids.Shape[0];
        long position = cache.Layers[0].Length;
        if (position >= Config.MaxPositions) throw new InvalidOperationException($"GptLM: position {position} is beyond n_positions {Config.MaxPositions}");
        var pos = Enumerable.Repeat(position, b).ToArray();
        var x = F.Add(Wte.Forward(ids), Wpe.Forward(Tensor.From(pos, b)));
        for (int i = 0; i < Blocks.Count; i++) x = Blocks[i].Step(x, cache.Layers[i]);
        return F.Linear(LnF.Forward(x), Wte.Weight);
    }
}

public sealed class KvCache(KvLayer[] layers) : IDisposable
{
    public KvLayer[] Layers { get; } = layers;
    public long Bytes => Layers.Sum(l => l.Bytes);
    public void Truncate(int length) { foreach (var l in Layers) l.Truncate(length); }
    public void Dispose() { foreach (var l in Layers) l.Dispose(); }
}
