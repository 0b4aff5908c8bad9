using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.Evaluation;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Data → batches → model → full-ranking metrics, end to end on the synthetic data (plain SGD inline; the
/// real trainer lives in Training/).</summary>
public class RecommendationPipelineTests
{
    private static IReadOnlyDictionary<string, double> Evaluate(ISequentialRecommender model, LeaveOneOutSplit split, SeqSample[] samples, int maxLen)
    {
        ((Module)model).Eval();
        var acc = new RankingAccumulator();
        using var noGrad = GradMode.NoGrad();
        foreach (var batch in SequenceBatcher.Samples(split.Data, samples, maxLen, 256))
        {
            using var scope = new TensorScope();
            using (batch) acc.Add(model.Scores(model.Forward(batch.ItemSeq, batch.ItemSeqLen)), batch.PosItems!.ToInt64Array());
        }
        Assert.Equal(samples.Length, acc.Count);
        return acc.Result();
    }

    [Theory]
    [InlineData("gru4rec")]
    [InlineData("sasrec")]
    public void TrainingOnSyntheticMarkovDataBeatsChance(string kind)
    {
        var data = SequenceDataset.Build(SyntheticRecData.Generate(new SyntheticRecOptions
        {
            Users = 300, Items = 60, MinLength = 8, MaxLength = 16, Clusters = 4, Successors = 1, FollowProbability = 0.8, PreferenceProbability = 0.1, Seed = 1,
        }));
        var split = LeaveOneOutSplit.Create(data);
        const int maxLen = 16;
        ISequentialRecommender model = kind == "sasrec"
            ? new SASRec(new SASRecConfig { NItems = data.NItems, MaxSeqLength = maxLen, HiddenSize = 32, NLayers = 1, InnerSize = 64, HiddenDropout = 0.1f, AttnDropout = 0.1f }, seed: 2)
            : new GRU4Rec(new GRU4RecConfig { NItems = data.NItems, EmbeddingSize = 32, HiddenSize = 32, Dropout = 0.1f }, seed: 2);
        var module = (Module)model;
        double before = Evaluate(model, split, split.Valid, maxLen)["hit@10"];
        var windows = split.TrainWindows(maxLen);
        var rng = new Random(3);
        for (int epoch = 0; epoch < 4; epoch++)
        {
            module.Train();
            foreach (var batch in SequenceBatcher.Windows(data, windows, maxLen, 64, rng))
            {
                using var scope = new TensorScope();
                using (batch)
                {
                    var loss = model.AllPositions(batch.ItemSeq, batch.Targets!);
                    loss.Backward();
                }
                foreach (var p in module.Parameters()) p.Backend.AddInPlace(p, p.Grad!, kind == "sasrec" ? -0.5f : -1f);
                module.ZeroGrad();
            }
        }
        var after = Evaluate(model, split, split.Valid, maxLen);
        // Chance is 10 of ~59 items; the chain makes the next item predictable (measured: GRU4Rec 0.23 → 0.66, SASRec 0.28 → 0.87).
        Assert.True(after["hit@10"] > 0.5 && after["hit@10"] > before + 0.2, $"{kind}: hit@10 {before:F3} → {after["hit@10"]:F3}");
        Assert.True(after["ndcg@10"] <= after["hit@10"] && after["mrr@10"] <= after["ndcg@10"]);
        module.Dispose();
    }
}
