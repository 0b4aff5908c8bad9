using Mamba4.Nn;

namespace Mamba4.Training;

public static class Gradients
{
    /// <summary>√Σ‖g‖² over every parameter gradient.</summary>
    public static double GlobalNorm(Module model) =>
        Math.Sqrt(model.Parameters().Where(p => p.Grad is not null).GroupBy(p => p.Device)
            .Sum(g => g.First().Backend.SumOfSquares(g.Select(p => p.Grad!).ToList())));

    /// <summary>‖g‖ and the factor torch.nn.utils.clip_grad_norm_ scales every gradient by — maxNorm/(‖g‖ + 10⁻⁶) when ‖g‖
    /// exceeds maxNorm, else 1 — without scaling anything: <see cref="AdamW.Step(float)"/> takes the factor, which spares a
    /// pass over every gradient (a launch per parameter on a GPU).</summary>
    public static (double Norm, float Scale) ClipFactor(Module model, double maxNorm)
    {
        double norm = GlobalNorm(model);
        float scale = maxNorm > 0 && norm > maxNorm && double.IsFinite(norm) ? (float)(maxNorm / (norm + 1e-6)) : 1f;
        return (norm, scale);
    }

    /// <summary>Scales every gradient by <see cref="ClipFactor"/>'s factor (torch.nn.utils.clip_grad_norm_). Returns ‖g‖ before clipping.</summary>
    public static double ClipByGlobalNorm(Module model, double maxNorm)
    {
        var (norm, scale) = ClipFactor(model, maxNorm);
        if (scale != 1f)
            foreach (var p in model.Parameters())
                if (p.Grad is { } g) g.Backend.Scale(g, scale, g);
        return norm;
    }
}
