using Mamba4.Backends;
using Mamba4.Nn;
using Mamba4.Tensors;

namespace Mamba4.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter; PyTorch's torch.optim.AdamW): bias-corrected moments and decoupled
/// weight decay. No decay on biases, norm weights, D, A_log and other vectors (rank ≤ 1), nor on an
/// embedding's padding row. Moments live beside each parameter, named as the parameter.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly List<Slot> _slots = new();

    private sealed record Slot(string Name, Tensor Param, Tensor M, Tensor V, bool Decay, long PaddingRow);

    public AdamW(Module model, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
    {
        (LearningRate, Beta1, Beta2, Eps, WeightDecay) = (lr, beta1, beta2, eps, weightDecay);
        var paddingRows = model.Modules().OfType<Nn.Embedding>().Where(e => e.PaddingIndex >= 0)
            .ToDictionary(e => (object)e.Weight, e => e.PaddingIndex, ReferenceEqualityComparer.Instance);
        foreach (var (name, p) in model.NamedParameters())
        {
            bool decay = p.Rank >= 2 && !name.EndsWith("A_log", StringComparison.Ordinal);
            _slots.Add(new Slot(name, p,
                Tensor.Zeros(p.Shape, p.DType, p.Device).Persist(), Tensor.Zeros(p.Shape, p.DType, p.Device).Persist(),
                decay, paddingRows.TryGetValue(p, out var row) ? (long)row : -1));
        }
    }

    public float LearningRate { get; set; }
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }
    /// <summary>Updates taken so far (t in the bias corrections).</summary>
    public long Steps { get; set; }

    /// <summary>Names of parameters that receive weight decay.</summary>
    public IEnumerable<string> Decayed => _slots.Where(s => s.Decay).Select(s => s.Name);

    /// <summary>One update from the parameters' gradients, each read times <paramref name="gradScale"/> (clipping's factor,
    /// <see cref="Gradients.ClipFactor"/>: the same F32 products as scaling the gradients first, without their pass).</summary>
    public void Step(float gradScale = 1f)
    {
        Steps++;
        float bc1 = 1 - MathF.Pow(Beta1, Steps), bc2 = 1 - MathF.Pow(Beta2, Steps);
        foreach (var group in _slots.Where(s => s.Param.Grad is not null).GroupBy(s => s.Param.Device))
            group.First().Param.Backend.AdamWStep(
                group.Select(s => new AdamWParameter(s.Param, s.Param.Grad!, s.M, s.V, s.Decay ? WeightDecay : 0f, s.PaddingRow)).ToList(),
                LearningRate, Beta1, Beta2, Eps, bc1, bc2, gradScale);
    }

    /// <summary>The moments by name ("exp_avg.NAME", "exp_avg_sq.NAME") for checkpoints.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        _slots.SelectMany(s => new[] { ("exp_avg." + s.Name, s.M), ("exp_avg_sq." + s.Name, s.V) });

    public void LoadState(Func<string, Tensor?> read)
    {
        foreach (var (name, t) in State())
        {
            using var src = read(name) ?? throw new InvalidDataException($"optimizer state '{name}' is missing from the checkpoint");
            if (src.Shape != t.Shape) throw new InvalidDataException($"optimizer state '{name}': expected {t.Shape}, found {src.Shape}");
            t.CopyFrom(src);
        }
    }

    public void Dispose()
    {
        foreach (var s in _slots) { s.M.Dispose(); s.V.Dispose(); }
    }
}
