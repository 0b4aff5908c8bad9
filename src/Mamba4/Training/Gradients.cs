using Mamba4.Nn;

namespace Mamba4.Training;

public static class Gradients
{
    /// <summary>√Σ‖g‖² over every parameter gradient.</summary>
    public static double GlobalNorm(Module model) =>
        Math.Sqrt(model.Parameters().Where(p => p.Grad is not null).GroupBy(p => p.Device)
            .Sum(g => g.First().Backend.SumOfSquares(g.Select(p => p.Grad!).ToList())));

    /// <summary>Scales every gradient by maxNorm/‖g‖ when ‖g‖ exceeds maxNorm (torch.nn.utils.clip_grad_norm_). Returns ‖g‖ before clipping.</summary>
    public static double ClipByGlobalNorm(Module model, double maxNorm)
    {
        double norm = GlobalNorm(model);
        if (maxNorm > 0 && norm > maxNorm && double.IsFinite(norm))
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var p in model.Parameters())
                if (p.Grad is { } g) g.Backend.Scale(g, scale, g);
        }
        return norm;
    }
}
