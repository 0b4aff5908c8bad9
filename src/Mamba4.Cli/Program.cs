using System.CommandLine;
using Mamba4.Cli;

var root = new RootCommand("mamba4 — the Mamba selective state space model in .NET");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
return root.Parse(args).Invoke();
