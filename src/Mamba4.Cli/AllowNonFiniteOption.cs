using System.CommandLine;
using Mamba4.IO;

namespace Mamba4.Cli;

/// <summary>--allow-nonfinite, on every command that loads a model: weights holding NaN or ±Inf load with a warning
/// on standard error instead of being refused (<see cref="ModelLoadOptions.AllowNonFinite"/>).</summary>
internal static class AllowNonFiniteOption
{
    public static Option<bool> Create() =>
        new("--allow-nonfinite") { Description = "load weights holding NaN or ±Inf (each such tensor is reported) instead of refusing them" };

    /// <summary>How the command loads its model: onto <paramref name="device"/>, non-finite weights as the option says.</summary>
    public static ModelLoadOptions LoadOptions(ParseResult parse, Option<bool> option, Tensors.Device? device = null) =>
        new() { AllowNonFinite = parse.GetValue(option), Warn = message => Console.Error.WriteLine($"warning: {message}"), Device = device ?? Tensors.Device.Cpu };
}
