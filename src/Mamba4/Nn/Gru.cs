using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Nn;

/// <summary>
/// torch.nn.GRU(input_size, hidden_size, num_layers, bias, batch_first=True, dropout): parameters
/// <c>weight_ih_l{k}</c> [3H, in], <c>weight_hh_l{k}</c> [3H, H], and with bias <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [3H];
/// PyTorch's init U(±1/√H) for all of them. Layer k &gt; 0 reads layer k−1's outputs (after dropout when training).
/// </summary>
public sealed class Gru : Module
{
    private readonly Tensor[] _wIh, _wHh;
    private readonly Tensor?[] _bIh, _bHh;

    public Gru(int inputSize, int hiddenSize, int numLayers, bool bias, Random rng, float dropout = 0f)
    {
        if (inputSize < 1 || hiddenSize < 1 || numLayers < 1)
            throw new ArgumentOutOfRangeException(nameof(hiddenSize), $"GRU sizes must be positive (input {inputSize}, hidden {hiddenSize}, layers {numLayers})");
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        NumLayers = numLayers;
        DropoutP = dropout;
        _wIh = new Tensor[numLayers];
        _wHh = new Tensor[numLayers];
        _bIh = new Tensor?[numLayers];
        _bHh = new Tensor?[numLayers];
        double bound = 1.0 / Math.Sqrt(hiddenSize);
        for (int k = 0; k < numLayers; k++)
        {
            int inp = k == 0 ? inputSize : hiddenSize;
            _wIh[k] = Parameter($"weight_ih_l{k}", Init.Uniform(rng, new Shape(3 * hiddenSize, inp), -bound, bound));
            _wHh[k] = Parameter($"weight_hh_l{k}", Init.Uniform(rng, new Shape(3 * hiddenSize, hiddenSize), -bound, bound));
            if (bias)
            {
                _bIh[k] = Parameter($"bias_ih_l{k}", Init.Uniform(rng, new Shape(3 * hiddenSize), -bound, bound));
                _bHh[k] = Parameter($"bias_hh_l{k}", Init.Uniform(rng, new Shape(3 * hiddenSize), -bound, bound));
            }
        }
    }

    public int InputSize { get; }
    public int HiddenSize { get; }
    public int NumLayers { get; }
    public float DropoutP { get; }
    public Tensor WeightIh(int layer) => _wIh[layer];
    public Tensor WeightHh(int layer) => _wHh[layer];
    public Tensor? BiasIh(int layer) => _bIh[layer];
    public Tensor? BiasHh(int layer) => _bHh[layer];

    /// <summary>x [batch, L, input] → the last layer's h_t for every t, [batch, L, hidden] (zero initial state).</summary>
    public Tensor Forward(Tensor x, ref ulong seed)
    {
        var h = x;
        for (int k = 0; k < NumLayers; k++)
        {
            if (k > 0) h = F.Dropout(h, DropoutP, seed++, Training);
            h = F.Gru(h, _wIh[k], _wHh[k], _bIh[k], _bHh[k]);
        }
        return h;
    }
}
