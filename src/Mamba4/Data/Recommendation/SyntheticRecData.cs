using System.Globalization;

namespace Mamba4.Data.Recommendation;

/// <summary>Parameters of <see cref="SyntheticRecData"/>.</summary>
public sealed record SyntheticRecOptions
{
    public int Users { get; init; } = 2000;
    public int Items { get; init; } = 500;
    public int MinLength { get; init; } = 5;
    public int MaxLength { get; init; } = 60;
    /// <summary>Items fall into this many genres; each user prefers two of them.</summary>
    public int Clusters { get; init; } = 10;
    /// <summary>Each item has this many likely successors (mostly in its own genre).</summary>
    public int Successors { get; init; } = 3;
    /// <summary>Probability that the next item is one of the current item's successors (the Markov part).</summary>
    public double FollowProbability { get; init; } = 0.6;
    /// <summary>Probability that the next item is drawn from the user's preferred genres (else: any item).</summary>
    public double PreferenceProbability { get; init; } = 0.3;
    public int Seed { get; init; } = 0;
}

/// <summary>
/// A seeded synthetic interaction log with learnable sequential structure: items belong to genres and each item
/// has a few likely successors (a sparse Markov chain, successors weighted 3:2:1…); each user prefers two genres.
/// A user's next item follows the chain with <see cref="SyntheticRecOptions.FollowProbability"/>, comes from the
/// preferred genres (popular items more often) with <see cref="SyntheticRecOptions.PreferenceProbability"/>, and is
/// uniform otherwise. The same options give the same log.
/// </summary>
public static class SyntheticRecData
{
    public static InteractionLog Generate(SyntheticRecOptions? options = null)
    {
        var o = options ?? new SyntheticRecOptions();
        if (o.Users < 1 || o.Items < 2 || o.MinLength < 1 || o.MaxLength < o.MinLength || o.Clusters < 1 || o.Successors < 1)
            throw new ArgumentException($"invalid synthetic data options: {o}");
        var rng = new Random(o.Seed);
        int items = o.Items, clusters = Math.Min(o.Clusters, items);
        var genre = new int[items];
        for (int i = 0; i < items; i++) genre[i] = i % clusters;
        var byGenre = Enumerable.Range(0, clusters).Select(g => Enumerable.Range(0, items).Where(i => genre[i] == g).ToArray()).ToArray();
        // Successors: 80% from the item's own genre, else anywhere.
        var successors = new int[items][];
        for (int i = 0; i < items; i++)
        {
            successors[i] = new int[o.Successors];
            for (int k = 0; k < o.Successors; k++)
            {
                var pool = rng.NextDouble() < 0.8 ? byGenre[genre[i]] : null;
                successors[i][k] = pool is null ? rng.Next(items) : pool[rng.Next(pool.Length)];
            }
        }
        // Successor k has weight (Successors − k).
        double totalWeight = o.Successors * (o.Successors + 1) / 2.0;

        var builder = new InteractionLogBuilder("synthetic", hasTimestamps: true);
        long time = 0;
        for (int u = 0; u < o.Users; u++)
        {
            int g1 = rng.Next(clusters), g2 = rng.Next(clusters);
            int len = o.MinLength + rng.Next(o.MaxLength - o.MinLength + 1);
            int Preferred()
            {
                var pool = byGenre[rng.NextDouble() < 0.6 ? g1 : g2];
                // Popularity skew inside a genre: the square of a uniform favours the pool's first items.
                double x = rng.NextDouble();
                return pool[(int)(x * x * pool.Length)];
            }
            int cur = Preferred();
            string user = "u" + u.ToString(CultureInfo.InvariantCulture);
            for (int t = 0; t < len; t++)
            {
                builder.Add(user, "i" + cur.ToString(CultureInfo.InvariantCulture), time++, 0);
                double r = rng.NextDouble();
                if (r < o.FollowProbability)
                {
                    double w = rng.NextDouble() * totalWeight;
                    int k = 0;
                    for (double acc = o.Successors; k < o.Successors - 1 && w >= acc; k++) acc += o.Successors - k - 1;
                    cur = successors[cur][k];
                }
                else if (r < o.FollowProbability + o.PreferenceProbability) cur = Preferred();
                else cur = rng.Next(items);
            }
        }
        return builder.Build();
    }
}
