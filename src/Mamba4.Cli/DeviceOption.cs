using System.CommandLine;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Cli;

/// <summary>
/// The --device option of every command that trains or runs a model, parsed and checked in one place:
/// <c>cpu</c> (default), <c>cuda</c> (GPU 0) or <c>cuda:N</c>. <see cref="Use"/> makes it the device that models are
/// trained on and loaded to (each command passes it into its settings), or fails with the reason CUDA cannot be used
/// (no driver, no GPU, a library missing, no such GPU), which the CLI prints as one line with exit code 1.
/// </summary>
internal static class DeviceOption
{
    public static Option<string> Create() =>
        new("--device") { Description = "where the model runs: cpu, cuda (GPU 0) or cuda:N", DefaultValueFactory = _ => "cpu" };

    /// <summary>Parses and checks the option's value and returns it (each command puts it into its settings).</summary>
    public static Device Use(ParseResult parse, Option<string> option)
    {
        return Resolve(parse.GetValue(option) ?? "cpu");
    }

    /// <summary>The device named by <paramref name="text"/>, or ArgumentException / NotSupportedException saying what is wrong.</summary>
    public static Device Resolve(string text) => Backend.ResolveDeviceOption(text);
}
