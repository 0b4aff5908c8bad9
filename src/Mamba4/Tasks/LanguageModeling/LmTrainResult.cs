using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Tensors;
using Mamba4.Text;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.LanguageModeling;

public sealed record LmTrainResult(string Model, string Size, long Parameters, long Steps, double ValidationLoss, double TokensPerSecond,
    double Seconds, double PeakMegabytes, string ModelPath, bool Interrupted)
{
    public string Summary =>
        $"{Model} ({Size}, {Parameters:N0} parameters): validation loss {ValidationLoss:F4} nats/token, perplexity {Math.Exp(ValidationLoss):F2}, after {Steps} steps in {Seconds:F0} s " +
        $"({TokensPerSecond / 1000:F1}k tokens/s, peak tensor memory {PeakMegabytes:F0} MB); model: {ModelPath}";

    public JsonObject ToJson() => new()
    {
        ["model"] = Model, ["size"] = Size, ["parameters"] = Parameters, ["steps"] = Steps,
        ["val_loss"] = ValidationLoss, ["val_ppl"] = Math.Exp(ValidationLoss), ["tokens_per_s"] = Math.Round(TokensPerSecond, 1), ["seconds"] = Math.Round(Seconds, 2),
        ["peak_mb"] = Math.Round(PeakMegabytes, 1),
    };
}
