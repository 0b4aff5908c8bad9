namespace Mamba4.Tests;

/// <summary>Tests that change the process's engine settings (<see cref="Mamba4.Backends.Backend.Configure"/>: the few-row
/// GEMV kernels, the scan plan) to compare code paths run alone, never beside another test, and restore the settings.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EngineSettingsCollection
{
    public const string Name = "engine settings";
}
