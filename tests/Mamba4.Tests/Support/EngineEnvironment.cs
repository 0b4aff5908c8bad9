using Mamba4.Backends;

[assembly: AssemblyFixture(typeof(Mamba4.Tests.EngineEnvironment))]

namespace Mamba4.Tests;

/// <summary>The test run takes the engine's environment as the tool does (MAMBA4_CUDA_CACHE and the other MAMBA4_* settings
/// that scripts/gpu-test.sh and developers set), once, before any test.</summary>
public sealed class EngineEnvironment
{
    public EngineEnvironment() => Backend.Configure(EngineSettings.FromEnvironment());
}
