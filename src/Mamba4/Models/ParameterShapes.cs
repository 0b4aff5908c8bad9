using System.Collections;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>
/// The names and shapes of a model's parameters, computed from its configuration without allocating anything: what
/// a load compares the weight files' headers with, and what the memory estimate counts, before the model is built.
/// Each model's static <c>Shapes(config)</c> mirrors its constructor with the layer helpers below; tests pin the
/// two together for every model kind.
/// </summary>
public sealed class ParameterShapes : IEnumerable<(string Name, Shape Shape)>
{
    private readonly List<(string Name, Shape Shape)> _list = [];

    public int Count => _list.Count;

    /// <summary>Number of values of all parameters.</summary>
    public long Elements => _list.Sum(p => p.Shape.NumElements);

    /// <summary>Number of values of the largest parameter.</summary>
    public long LargestElements => _list.Count == 0 ? 0 : _list.Max(p => p.Shape.NumElements);

    public ParameterShapes Add(string name, params int[] dims)
    {
        _list.Add((name, new Shape(dims)));
        return this;
    }

    /// <summary><see cref="Nn.Linear"/>: weight [out, in], bias [out].</summary>
    public ParameterShapes Linear(string name, int inFeatures, int outFeatures, bool bias = true)
    {
        Add(name + ".weight", outFeatures, inFeatures);
        return bias ? Add(name + ".bias", outFeatures) : this;
    }

    /// <summary><see cref="Nn.Embedding"/>: weight [count, dim].</summary>
    public ParameterShapes Embedding(string name, int count, int dim) => Add(name + ".weight", count, dim);

    /// <summary><see cref="Nn.LayerNorm"/>: weight and bias [dim].</summary>
    public ParameterShapes LayerNorm(string name, int dim) => Add(name + ".weight", dim).Add(name + ".bias", dim);

    /// <summary><see cref="Nn.RmsNorm"/>: weight [dim].</summary>
    public ParameterShapes RmsNorm(string name, int dim) => Add(name + ".weight", dim);

    /// <summary><see cref="Nn.MambaMixer"/>, or <see cref="Nn.Mamba2Mixer"/> for a Mamba-2 config.</summary>
    public ParameterShapes MambaMixer(string name, MambaConfig c)
    {
        if (c.Mixer == MixerKind.Mamba2) return Mamba2Mixer(name, c);
        int d = c.DModel, e = c.DInner, n = c.DState, r = c.DtRank;
        Linear(name + ".in_proj", d, 2 * e, c.Bias);
        Add(name + ".conv1d.weight", e, 1, c.DConv);
        if (c.ConvBias) Add(name + ".conv1d.bias", e);
        if (c.Selective)
        {
            Linear(name + ".x_proj", e, r + 2 * n, bias: false);
            Linear(name + ".dt_proj", r, e);
        }
        else Add(name + ".B", e, n).Add(name + ".C", e, n).Add(name + ".dt_bias", e);
        Add(name + ".A_log", e, n).Add(name + ".D", e);
        return Linear(name + ".out_proj", e, d, c.Bias);
    }

    /// <summary><see cref="Nn.Mamba2Mixer"/>.</summary>
    private ParameterShapes Mamba2Mixer(string name, MambaConfig c)
    {
        int d = c.DModel, e = c.DInner, h = c.Heads, conv = c.ConvDim;
        Linear(name + ".in_proj", d, e + conv + h, c.Bias);
        Add(name + ".conv1d.weight", conv, 1, c.DConv);
        if (c.ConvBias) Add(name + ".conv1d.bias", conv);
        Add(name + ".dt_bias", h).Add(name + ".A_log", h).Add(name + ".D", h).Add(name + ".norm.weight", e);
        return Linear(name + ".out_proj", e, d, c.Bias);
    }

    /// <summary><see cref="Nn.Mamba4Layer"/>: mixer (and its reverse twin), LayerNorm, feed-forward network.</summary>
    public ParameterShapes Mamba4Layer(string name, MambaConfig mixer, int innerSize, bool bidirectional)
    {
        MambaMixer(name + ".mamba", mixer);
        if (bidirectional) MambaMixer(name + ".mamba_r", mixer);
        LayerNorm(name + ".LayerNorm", mixer.DModel);
        return Linear(name + ".ffn.w_1", mixer.DModel, innerSize).Linear(name + ".ffn.w_2", innerSize, mixer.DModel).LayerNorm(name + ".ffn.LayerNorm", mixer.DModel);
    }

    public IEnumerator<(string Name, Shape Shape)> GetEnumerator() => _list.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
