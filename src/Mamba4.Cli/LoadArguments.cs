using System.CommandLine;
using Mamba4.IO;

namespace Mamba4.Cli;

/// <summary>--device, --allow-nonfinite and --dtype of the commands that load a language model to run it (generate, lm eval).</summary>
internal sealed record LoadArguments(Option<string> Device, Option<bool> AllowNonFinite, Option<string?> DType)
{
    public static LoadArguments AddTo(Command cmd)
    {
        var arguments = new LoadArguments(DeviceOption.Create(), AllowNonFiniteOption.Create(), DTypeOption.Create());
        cmd.Options.Add(arguments.Device);
        cmd.Options.Add(arguments.AllowNonFinite);
        cmd.Options.Add(arguments.DType);
        return arguments;
    }

    /// <summary>How to load the model: the weights' type and the device, both checked here (before any file is read), and
    /// non-finite weights as asked.</summary>
    public ModelLoadOptions Parse(ParseResult parse)
    {
        var weightType = DTypeOption.Get(parse, DType);
        var target = DeviceOption.Use(parse, Device);
        return AllowNonFiniteOption.LoadOptions(parse, AllowNonFinite, target) with { WeightDType = weightType };
    }
}
