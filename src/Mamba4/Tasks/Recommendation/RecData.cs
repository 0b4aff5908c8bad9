using Mamba4.Data.Recommendation;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Loading interaction data for the recommender commands.</summary>
public static class RecData
{
    /// <summary>The built-in synthetic dataset (Markov-style preferences; 2000 users, 500 items).</summary>
    public static InteractionLog Synthetic(int seed = 0) => SyntheticRecData.Generate(new SyntheticRecOptions { Seed = seed });

    /// <summary>Reads a file (format named, or guessed from the file name) or generates the built-in data.</summary>
    public static InteractionLog Read(string? path, string? format, bool skipBadLines = false)
    {
        if (path is null)
        {
            if (format is not null) RecFormats.Parse(format);
            return Synthetic();
        }
        var f = format is not null ? RecFormats.Parse(format)
            : RecFormats.Guess(path) ?? throw new ArgumentException($"--format is needed for {Path.GetFileName(path)}: one of {RecFormats.Names}");
        if (!File.Exists(path)) throw new FileNotFoundException($"--data: {path} not found", path);
        return InteractionReader.Read(path, f, new RecReadOptions { SkipBadLines = skipBadLines });
    }

    /// <summary>
    /// The dataset's sequences in the ids of a saved model (through its token map; items it does not know are dropped),
    /// or as they are when the model has no map (then the dataset's items must fit the model).
    /// </summary>
    public static SequenceDataset ToModelIds(SequenceDataset data, RecModel model, out int unknownItems)
    {
        unknownItems = 0;
        if (model.ItemTokens is null)
        {
            if (data.NItems > model.NItems)
                throw new InvalidDataException($"{data.Source}: {data.NItems - 1} items, more than the model's {model.NItems - 1} (and the model has no item token map)");
            return data;
        }
        var seqs = new List<int[]>(data.UserCount);
        int unknown = 0;
        foreach (var s in data.Sequences)
        {
            var mapped = new List<int>(s.Length);
            foreach (var it in s)
                if (model.ItemId(data.ItemTokens[it]) is int id) mapped.Add(id);
                else unknown++;
            seqs.Add(mapped.ToArray());
        }
        unknownItems = unknown;
        return SequenceDataset.FromSequences(seqs, model.NItems, data.Source, data.UserTokens, model.ItemTokens);   // original tokens kept
    }
}
