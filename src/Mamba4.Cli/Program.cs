using System.CommandLine;
using Mamba4.Cli;

var root = new RootCommand("mamba4 — the Mamba selective state space model in .NET");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(LmCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(DetokenizeCommand.Create());
root.Subcommands.Add(RecCommand.Create());
root.Subcommands.Add(ForecastCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(QuantizeCommand.Create());
root.Subcommands.Add(InitCommand.Create());
try
{
    // the one place the engine's environment is read; NVRTC's first-use compiles (seconds to a minute) announced on stderr
    Mamba4.Backends.Backend.Configure(Mamba4.Backends.EngineSettings.FromEnvironment() with { CudaCompileLog = line => Console.Error.WriteLine($"mamba4: {line}") });
    // ProcessTerminationTimeout null: System.CommandLine does not handle SIGINT/SIGTERM. Each command that stops on a signal
    // owns it (training and the other long runs: Tasks/StopSignal; serve: the host's console lifetime, which drains), instead
    // of two handlers on one signal, the first of which blocked the second for up to 2 s and then forced exit code 130.
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
}
catch (Exception e) when (e is IOException or FormatException or InvalidDataException or ArgumentException or NotSupportedException or UnauthorizedAccessException
                           or OutOfMemoryException or Mamba4.Backends.Cuda.Native.CudaException)
{
    // Bad input, or a GPU out of memory / failing: one clear line (the messages name the file, field, tensor or kernel), no stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
