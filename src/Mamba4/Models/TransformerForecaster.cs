using Mamba4.Backends;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>
/// Transformer encoder layer, post-norm (as iTransformer's / the vanilla Transformer's encoder):
/// <code>
/// a = out_projection(attention(query_projection(x), key_projection(x), value_projection(x)))   non-causal, multi-head
/// x = norm1(x + dropout(a))
/// y = dropout(conv2(dropout(gelu(conv1(x)))))                                               conv1/conv2: position-wise Linear
/// out = norm2(x + y)
/// </code>
/// </summary>
public sealed class TransformerEncoderLayer : Module
{
    public TransformerEncoderLayer(int dModel, int heads, int dFf, float dropout, Random rng)
    {
        Query = Child("query_projection", new Nn.Linear(dModel, dModel, true, rng));
        Key = Child("key_projection", new Nn.Linear(dModel, dModel, true, rng));
        Value = Child("value_projection", new Nn.Linear(dModel, dModel, true, rng));
        Out = Child("out_projection", new Nn.Linear(dModel, dModel, true, rng));
        Norm1 = Child("norm1", new Nn.LayerNorm(dModel));
        Conv1 = Child("conv1", new Nn.Linear(dModel, dFf, true, rng));
        Conv2 = Child("conv2", new Nn.Linear(dFf, dModel, true, rng));
        Norm2 = Child("norm2", new Nn.LayerNorm(dModel));
        (Heads, DropoutP) = (heads, dropout);
    }

    public Nn.Linear Query { get; }
    public Nn.Linear Key { get; }
    public Nn.Linear Value { get; }
    public Nn.Linear Out { get; }
    public Nn.LayerNorm Norm1 { get; }
    public Nn.Linear Conv1 { get; }
    public Nn.Linear Conv2 { get; }
    public Nn.LayerNorm Norm2 { get; }
    public int Heads { get; }
    public float DropoutP { get; }

    public Tensor Forward(Tensor x, ref ulong seed)
    {
        var a = Out.Forward(F.Attention(Query.Forward(x), Key.Forward(x), Value.Forward(x), new AttentionSpec(Heads, Causal: false)));
        x = Norm1.Forward(F.Add(x, F.Dropout(a, DropoutP, seed++, Training)));
        var y = F.Dropout(F.Gelu(Conv1.Forward(x)), DropoutP, seed++, Training);
        y = F.Dropout(Conv2.Forward(y), DropoutP, seed++, Training);
        return Norm2.Forward(F.Add(x, y));
    }
}

/// <summary>
/// The Transformer baseline on the same skeleton as <see cref="MambaForecaster"/> (<see cref="TokenForecaster"/>):
/// encoder layers with non-causal attention in place of the Mamba layers. With variate tokens this is
/// iTransformer; with temporal tokens a vanilla encoder, where a fixed sinusoidal position code is added to
/// the embedded steps (attention alone does not know the order).
/// </summary>
public sealed class TransformerForecaster : TokenForecaster
{
    public TransformerForecaster(ForecasterConfig config, int seed = 0) : this(config, new Random(seed)) { }

    private TransformerForecaster(ForecasterConfig config, Random rng) : base(config, rng)
    {
        Layers = Child("layers", new ModuleList<TransformerEncoderLayer>(Enumerable.Range(0, config.Layers).Select(_ =>
            new TransformerEncoderLayer(config.DModel, config.Heads, config.DFf, config.Dropout, rng))));
        CreateHead(rng);
    }

    public ModuleList<TransformerEncoderLayer> Layers { get; }

    protected override Tensor Encode(Tensor h, ref ulong seed)
    {
        if (Config.Temporal) h = F.Add(h, Positions(h.Shape[0], h.Shape[1], h.Shape[2]));
        foreach (var layer in Layers.Items) h = layer.Forward(h, ref seed);
        return h;
    }

    /// <summary>PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(…), repeated over the batch.</summary>
    private static Tensor Positions(int b, int t, int d)
    {
        var pe = new float[(long)b * t * d];
        for (int s = 0; s < t; s++)
            for (int i = 0; i < d; i++)
            {
                double angle = s / Math.Pow(10000, 2 * (i / 2) / (double)d);
                pe[(long)s * d + i] = (float)(i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        for (int j = 1; j < b; j++) Array.Copy(pe, 0, pe, (long)j * t * d, (long)t * d);
        return Tensor.From(pe, b, t, d);
    }
}
