namespace Mamba4.Training;

/// <summary>
/// A small random generator whose whole state is one 64-bit number (SplitMix64), so it can be saved in a
/// checkpoint and resumed exactly. <see cref="ForStep"/> derives an independent stream from (seed, step).
/// </summary>
public sealed class SplitMixRandom(ulong state)
{
    public ulong State { get; set; } = state;

    public static SplitMixRandom ForStep(long seed, long step, long stream = 0) =>
        new(Mix((ulong)seed * 0x9E3779B97F4A7C15UL ^ Mix((ulong)step + 0x632BE59BD9B4E019UL * (ulong)(stream + 1))));

    public ulong NextUInt64()
    {
        State += 0x9E3779B97F4A7C15UL;
        return Mix(State);
    }

    /// <summary>Uniform in [0, max).</summary>
    public int Next(int max) => (int)((NextUInt64() >> 33) * (ulong)max >> 31);

    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
