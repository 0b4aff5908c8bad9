using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>BERT4Rec: RecBole's masking, mask-appended evaluation, the cloze loss and its gradients against float64, bidirectionality, save/load.</summary>
public class BERT4RecTests
{
    private static BERT4RecConfig Tiny(float dropout = 0f) => new()
    {
        NItems = 6, MaxSeqLength = 4, HiddenSize = 4, NLayers = 2, NHeads = 2, InnerSize = 8, HiddenDropout = dropout, AttnDropout = dropout,
    };

    private static readonly long[] Seqs = [1, 2, 3, 4, /**/ 5, 1, 2, 0, /**/ 3, 4, 0, 0];

    [Fact]
    public void MaskingMasksAboutMaskRatioOfTheItemsAndNeverPadding()
    {
        var rng = new Random(3);
        const int batch = 4000, l = 50, maskLength = 10;
        const long mask = 1000;
        var seq = new long[batch * l];
        for (int b = 0; b < batch; b++)
        {
            int len = rng.Next(1, l + 1);
            for (int t = 0; t < len; t++) seq[b * l + t] = rng.Next(1, 999);
        }
        var cloze = BERT4Rec.Mask(seq, batch, l, mask, 0.2, maskLength, new Random(11));
        long items = 0, masked = 0;
        var counted = cloze.Positions.ToHashSet();
        for (int b = 0; b < batch; b++)
        {
            var rowMasked = new List<int>();
            for (int t = 0; t < l; t++)
            {
                int i = b * l + t;
                if (seq[i] == 0) { Assert.Equal(0, cloze.MaskedSeq[i]); continue; }   // padding stays padding
                items++;
                if (cloze.MaskedSeq[i] == mask) { masked++; rowMasked.Add(t); }
                else Assert.Equal(seq[i], cloze.MaskedSeq[i]);
            }
            // RecBole counts the last mask_item_length masked positions of the row, position 0 never.
            var expected = rowMasked.Skip(Math.Max(0, rowMasked.Count - maskLength)).Where(t => t > 0).Select(t => (long)b * l + t).ToList();
            Assert.Equal(expected, cloze.Positions.Where(p => p / l == b));
        }
        double fraction = (double)masked / items;
        Assert.InRange(fraction, 0.19, 0.21);   // ~100k items: the standard error is 0.0013
        for (int i = 0; i < cloze.Positions.Length; i++) Assert.Equal(seq[cloze.Positions[i]], cloze.Targets[i]);
        Assert.Equal(counted.Count, cloze.Positions.Length);
    }

    [Fact]
    public void MasksAreSeededByRunEpochAndBatch()
    {
        var seq = Enumerable.Range(0, 64 * 20).Select(i => (long)(i % 20 == 19 ? 0 : 1 + i % 7)).ToArray();
        long[] Masked(long seed, int epoch, int batch) => BERT4Rec.Mask(seq, 64, 20, 99, 0.2, 4, RecExperiment.ClozeRandom(seed, epoch, batch)).MaskedSeq;
        Assert.Equal(Masked(1, 2, 3), Masked(1, 2, 3));
        Assert.NotEqual(Masked(1, 2, 3), Masked(1, 2, 4));
        Assert.NotEqual(Masked(1, 2, 3), Masked(1, 3, 3));
        Assert.NotEqual(Masked(1, 2, 3), Masked(2, 2, 3));
    }

    [Fact]
    public void EvaluationAppendsMaskAfterTheHistoryAsRecBole()
    {
        // reconstruct_test_data: [mask] at column len of the widened sequence, then column 0 dropped.
        long[] seq = [1, 2, 3, 0, /**/ 1, 2, 3, 4, /**/ 5, 0, 0, 0];
        var r = BERT4Rec.WithMaskAppended(seq, [3, 4, 1], 3, 4, 9);
        Assert.Equal(new long[] { 2, 3, 9, 0, /**/ 2, 3, 4, 9, /**/ 9, 0, 0, 0 }, r);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => BERT4Rec.WithMaskAppended(seq, [0, 4, 1], 3, 4, 9));
        Assert.Contains("item_seq_len[0] = 0 is outside [1, 4]", e.Message);
    }

    [Fact]
    public void EvaluationNeverSeesTheTarget()
    {
        // The batch row holds the history; whatever follows it (the target, another item, padding) cannot change the scores.
        using var scope = new TensorScope();
        using var model = new BERT4Rec(Tiny() with { MaxSeqLength = 5 }, seed: 2);
        model.Eval();
        float[] Scores(long after) =>
            model.Scores(model.Forward(Tensor.From(new long[] { 1, 2, 3, after, 0 }, 1, 5), Tensor.From(new long[] { 3 }, 1))).ToFloatArray();
        var padded = Scores(0);
        Assert.Equal(padded, Scores(4));
        Assert.Equal(padded, Scores(5));
        Assert.NotEqual(padded, model.Scores(model.Forward(Tensor.From(new long[] { 1, 2, 4, 0, 0 }, 1, 5), Tensor.From(new long[] { 3 }, 1))).ToFloatArray());
    }

    [Fact]
    public void LaterItemsChangeEarlierOutputsUnlikeSASRec()
    {
        using var scope = new TensorScope();
        using var bert = new BERT4Rec(Tiny(), seed: 1);
        using var sasrec = new SASRec(Tiny().Encoder, seed: 1);
        bert.Eval();
        sasrec.Eval();
        float[] First(ISequentialRecommender m, long last) =>
            m.SequenceOutput(Tensor.From(new long[] { 1, 2, 3, last }, 1, 4)).ToFloatArray()[..4];
        Assert.NotEqual(First(bert, 4), First(bert, 5));
        Assert.Equal(First(sasrec, 4), First(sasrec, 5));
    }

    [Fact]
    public void ClozeLossAndEveryGradientMatchAFloat64EvaluationOfTheSameFormulas()
    {
        using var scope = new TensorScope();
        var config = Tiny();
        using var model = new BERT4Rec(config, seed: 5);
        var (loss, count) = model.ClozeLoss(Tensor.From(Seqs, 3, 4), new Random(8));
        var cloze = BERT4Rec.Mask(Seqs, 3, 4, model.MaskToken, config.MaskRatio, config.MaskItemLength, new Random(8));
        Assert.True(cloze.Positions.Length > 0, "the seed must mask some counted position");
        Assert.Equal(cloze.Positions.Length, count);
        loss.Backward();

        var p = model.NamedParameters().ToDictionary(x => x.Name, x => x.Tensor.ToDoubleArray());
        double Loss() => ReferenceLoss(p, config, cloze);
        double expected = Loss();
        Assert.True(Math.Abs(loss.ToFloatArray()[0] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"loss {loss.ToFloatArray()[0]}, float64 {expected}");

        const double eps = 1e-6;
        foreach (var (name, tensor) in model.NamedParameters())
        {
            var g = tensor.Grad?.ToFloatArray() ?? new float[tensor.NumElements];
            var x = p[name];
            for (int i = 0; i < x.Length; i++)
            {
                double orig = x[i];
                x[i] = orig + eps;
                double plus = Loss();
                x[i] = orig - eps;
                double minus = Loss();
                x[i] = orig;
                double fd = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(g[i] - fd) <= 5e-5 + 2e-3 * Math.Abs(fd), $"{name}[{i}]: autograd {g[i]}, float64 finite difference {fd}");
            }
        }
    }

    /// <summary>BERT4Rec's cloze loss in float64, written from RecBole's formulas (post-LayerNorm Transformer, erf GELU, bidirectional −10000 mask).</summary>
    private static double ReferenceLoss(Dictionary<string, double[]> p, BERT4RecConfig c, ClozeBatch cloze)
    {
        int d = c.HiddenSize, l = c.MaxSeqLength, b = cloze.MaskedSeq.Length / l, heads = c.NHeads, dh = d / heads;
        double[] Row(double[] m, long r) => m.AsSpan((int)r * d, d).ToArray();
        double[] Norm(double[] x, string name)
        {
            double mean = x.Average(), var = x.Sum(v => (v - mean) * (v - mean)) / x.Length;
            return x.Select((v, i) => (v - mean) / Math.Sqrt(var + c.LayerNormEps) * p[name + ".weight"][i] + p[name + ".bias"][i]).ToArray();
        }
        double[] Lin(double[] x, string name)
        {
            var w = p[name + ".weight"];
            int outs = p[name + ".bias"].Length;
            return Enumerable.Range(0, outs).Select(o => p[name + ".bias"][o] + x.Select((v, i) => v * w[o * x.Length + i]).Sum()).ToArray();
        }
        double Gelu(double v) => 0.5 * v * (1 + ElementwiseTests.Erf(v / Math.Sqrt(2)));
        double[] Add(double[] a, double[] b2) => a.Select((v, i) => v + b2[i]).ToArray();

        double total = 0;
        int counted = 0;
        for (int bb = 0; bb < b; bb++)
        {
            var ids = cloze.MaskedSeq.AsSpan(bb * l, l).ToArray();
            var h = Enumerable.Range(0, l).Select(t => Norm(Add(Row(p["item_embedding.weight"], ids[t]), Row(p["position_embedding.weight"], t)), "LayerNorm")).ToArray();
            for (int layer = 0; layer < c.NLayers; layer++)
            {
                string a = $"trm_encoder.layer.{layer}.multi_head_attention", f = $"trm_encoder.layer.{layer}.feed_forward";
                var q = h.Select(x => Lin(x, a + ".query")).ToArray();
                var k = h.Select(x => Lin(x, a + ".key")).ToArray();
                var v = h.Select(x => Lin(x, a + ".value")).ToArray();
                var next = new double[l][];
                for (int i = 0; i < l; i++)
                {
                    var ctx = new double[d];
                    for (int hh = 0; hh < heads; hh++)
                    {
                        var s = new double[l];
                        for (int j = 0; j < l; j++)
                        {
                            for (int e = hh * dh; e < (hh + 1) * dh; e++) s[j] += q[i][e] * k[j][e];
                            s[j] = s[j] / Math.Sqrt(dh) + (ids[j] == 0 ? -10000 : 0);
                        }
                        double m = s.Max(), z = s.Sum(x => Math.Exp(x - m));
                        for (int j = 0; j < l; j++)
                            for (int e = hh * dh; e < (hh + 1) * dh; e++) ctx[e] += Math.Exp(s[j] - m) / z * v[j][e];
                    }
                    var att = Norm(Add(Lin(ctx, a + ".dense"), h[i]), a + ".LayerNorm");
                    next[i] = Norm(Add(Lin(Lin(att, f + ".dense_1").Select(Gelu).ToArray(), f + ".dense_2"), att), f + ".LayerNorm");
                }
                h = next;
            }
            for (int r = 0; r < cloze.Positions.Length; r++)
            {
                if (cloze.Positions[r] / l != bb) continue;
                var o = Norm(Lin(h[cloze.Positions[r] % l], "output_ffn").Select(Gelu).ToArray(), "output_ln");
                var logits = Enumerable.Range(0, c.NItems).Select(item => p["output_bias"][item] + o.Select((x, e) => x * p["item_embedding.weight"][item * d + e]).Sum()).ToArray();
                double mx = logits.Max(), lse = mx + Math.Log(logits.Sum(x => Math.Exp(x - mx)));
                total += lse - logits[cloze.Targets[r]];
                counted++;
            }
        }
        return total / counted;
    }

    [Fact]
    public void SaveAndLoadRoundTripWithRecBoleNames()
    {
        using var scope = new TensorScope();
        var dir = Path.Combine(Path.GetTempPath(), "bert4rec-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = new BERT4Rec(Tiny(dropout: 0.2f), seed: 3);
            var names = model.NamedParameters().Select(x => x.Name).ToHashSet();
            foreach (var n in new[] { "item_embedding.weight", "position_embedding.weight", "trm_encoder.layer.1.multi_head_attention.query.weight",
                                      "trm_encoder.layer.1.feed_forward.dense_2.bias", "LayerNorm.weight", "output_ffn.weight", "output_ffn.bias",
                                      "output_ln.weight", "output_ln.bias", "output_bias" })
                Assert.Contains(n, names);
            Assert.Equal(new Shape(7, 4), model.ItemEmbedding.Weight.Shape);   // n_items + the [mask] row
            Assert.Equal(BERT4Rec.Shapes(model.Config).Select(s => (s.Name, s.Shape)).OrderBy(s => s.Name, StringComparer.Ordinal),
                         model.NamedParameters().Select(x => (x.Name, x.Tensor.Shape)).OrderBy(s => s.Name, StringComparer.Ordinal));
            RecModels.Save(model, 4, null, dir);
            Assert.Equal("bert4rec", JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["model"]!.GetValue<string>());
            model.Eval();
            var seq = Tensor.From(Seqs, 3, 4);
            var lens = Tensor.From(new long[] { 4, 3, 2 }, 3);
            var expected = model.Scores(model.Forward(seq, lens)).ToFloatArray();
            void Check(RecModel loaded)
            {
                Assert.Equal("bert4rec", loaded.Kind);
                Assert.Equal(model.Config, ((BERT4Rec)loaded.Model).Config);
                Assert.Equal(expected, loaded.Model.Scores(loaded.Model.Forward(seq, lens)).ToFloatArray());
            }
            using (var loaded = RecModels.Load(dir)) Check(loaded);
            // Without "model" the kind is still told apart from SASRec (mask_ratio).
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            config.Remove("model");
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            using (var guessed = RecModels.Load(dir)) Check(guessed);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
