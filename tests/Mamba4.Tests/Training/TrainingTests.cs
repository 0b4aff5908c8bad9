using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tests;

public class TrainingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Sets a parameter's gradient as a backward pass would (Tensor.Grad has no public setter), freeing the old one.</summary>
    private static void SetGrad(Tensor parameter, Tensor grad)
    {
        parameter.Grad?.Dispose();
        typeof(Tensor).GetProperty("Grad")!.SetValue(parameter, grad.Persist());
    }

    private sealed class TwoParams : Module
    {
        public TwoParams()
        {
            W = Parameter("w", Tensor.From([0.5f, -1f, 2f, 0.25f], 2, 2).Persist());
            B = Parameter("bias", Tensor.From([1f, -1f], 2).Persist());
        }
        public Tensor W { get; }
        public Tensor B { get; }
    }

    [Fact]
    public void AdamWMatchesItsDefinitionAndSkipsDecayOnVectors()
    {
        using var m = new TwoParams();
        using var opt = new AdamW(m, lr: 0.1f, beta1: 0.9f, beta2: 0.99f, eps: 1e-8f, weightDecay: 0.5f);
        Assert.Equal(["w"], opt.Decayed);
        double[] w = [0.5, -1, 2, 0.25], b = [1, -1], mw = new double[4], vw = new double[4], mb = new double[2], vb = new double[2];
        float[][] grads = [[0.1f, -0.2f, 0.3f, 0f], [1f, 2f, -3f, 0.5f]];
        for (int t = 1; t <= 2; t++)
        {
            SetGrad(m.W, Tensor.From(grads[t - 1], 2, 2));
            SetGrad(m.B, Tensor.From(grads[t - 1][..2], 2));
            opt.Step();
            void Ref(double[] p, double[] mm, double[] vv, float[] g, double wd)
            {
                for (int i = 0; i < p.Length; i++)
                {
                    mm[i] = 0.9 * mm[i] + 0.1 * g[i];
                    vv[i] = 0.99 * vv[i] + 0.01 * g[i] * g[i];
                    p[i] -= 0.1 * wd * p[i];
                    p[i] -= 0.1 * (mm[i] / (1 - Math.Pow(0.9, t))) / (Math.Sqrt(vv[i] / (1 - Math.Pow(0.99, t))) + 1e-8);
                }
            }
            Ref(w, mw, vw, grads[t - 1], 0.5);
            Ref(b, mb, vb, grads[t - 1][..2], 0);
        }
        var gotW = m.W.ToFloatArray(); var gotB = m.B.ToFloatArray();
        for (int i = 0; i < 4; i++) Assert.Equal(w[i], gotW[i], 1e-6);
        for (int i = 0; i < 2; i++) Assert.Equal(b[i], gotB[i], 1e-6);
    }

    /// <summary>
    /// After 2,000 steps of near-zero gradients a sudden gradient moves a weight by lr·(1 − β1)/√((1 − β2)/(1 − β2^t))
    /// (the moments hold only the new gradient; bias corrections at t = 2,001): ~2.9 × lr at β2 = 0.999 and ~0.45 × lr at
    /// 0.95 — the step behind the induction-heads preset's β2 (docs/induction-heads.md, "Adam's β2").
    /// </summary>
    [Theory]
    [InlineData(0.999f)]
    [InlineData(0.95f)]
    public void ASuddenGradientAfterTinyOnesMovesAWeightByTheBetaBound(float beta2)
    {
        using var m = new TwoParams();
        using var opt = new AdamW(m, lr: 0.01f, beta1: 0.9f, beta2: beta2, eps: 1e-8f, weightDecay: 0f);
        void StepWith(float g)
        {
            SetGrad(m.W, Tensor.From([g, g, g, g], 2, 2));
            SetGrad(m.B, Tensor.From([g, g], 2));
            opt.Step();
        }
        for (int t = 0; t < 2000; t++) StepWith(t % 2 == 0 ? 1e-6f : -1e-6f);
        float before = m.W.ToFloatArray()[0];
        StepWith(1f);
        double moved = (before - m.W.ToFloatArray()[0]) / 0.01, t1 = 2001;
        double bound = (1 - 0.9) / Math.Sqrt((1 - beta2) / (1 - Math.Pow(beta2, t1))) / (1 - Math.Pow(0.9, t1));
        Assert.Equal(bound, moved, bound * 2e-3);   // the tiny gradients add < 1e-4 of it
        Assert.True(beta2 < 0.99 ? moved < 0.5 : moved > 2.5, $"β2 {beta2}: moved {moved:F3} × lr");
    }

    [Fact]
    public void PaddingRowAndALogGetNoDecay()
    {
        using var model = new Mamba4Rec(new Mamba4RecConfig { NItems = 10, HiddenSize = 8, DState = 4, InnerSize = 16 });
        using var opt = new AdamW(model, lr: 0.1f, weightDecay: 0.5f);
        Assert.DoesNotContain(opt.Decayed, n => n.EndsWith("A_log") || n.EndsWith("bias") || n.Contains("LayerNorm") || n.EndsWith(".D"));
        Assert.Contains("item_embedding.weight", opt.Decayed);
        // A zero gradient leaves only the decay: every embedding row shrinks except the padding row 0.
        var emb = model.ItemEmbedding.Weight;
        emb.AsSpan<float>().Fill(1f);
        foreach (var p in model.Parameters()) SetGrad(p, Tensor.Zeros(p.Shape));
        opt.Step();
        var e = emb.ToFloatArray();
        Assert.All(e.Take(8), v => Assert.Equal(1f, v));
        Assert.All(e.Skip(8), v => Assert.Equal(0.95f, v, 1e-6));
    }

    [Fact]
    public void WarmupCosineSchedule()
    {
        var s = new WarmupCosine(1f, 10, 110, MinRatio: 0.1f);
        Assert.Equal(0.1f, s.At(0), 1e-6);
        Assert.Equal(1f, s.At(9), 1e-6);
        Assert.Equal(1f, s.At(10), 1e-6);
        Assert.Equal(0.55f, s.At(60), 1e-6);      // halfway: 0.1 + 0.9·½
        Assert.Equal(0.1f, s.At(110), 1e-6);
    }

    [Fact]
    public void ClipByGlobalNormScalesAllGradients()
    {
        using var m = new TwoParams();
        SetGrad(m.W, Tensor.From([3f, 0f, 0f, 0f], 2, 2));
        SetGrad(m.B, Tensor.From([0f, 4f], 2));
        Assert.Equal(5.0, Gradients.ClipByGlobalNorm(m, 1.0), 1e-9);
        Assert.Equal(1.0, Gradients.GlobalNorm(m), 1e-5);
        Assert.Equal(0.6f, m.W.Grad!.ToFloatArray()[0], 1e-5);
    }

    [Fact]
    public void AdamWTakingTheClipFactorEqualsClippingFirstBitForBit()
    {
        // Two identical models with the same gradients (vector and tail lanes: 5 × 37 weights, 5 biases): one clipped by a
        // pass and stepped, the other stepped with the factor; parameters and moments must agree exactly, over three steps.
        var rng = new Random(5);
        using var a = new Linear(37, 5, true, new Random(1));
        using var b = new Linear(37, 5, true, new Random(1));
        using var optA = new AdamW(a, lr: 0.01f, weightDecay: 0.1f);
        using var optB = new AdamW(b, lr: 0.01f, weightDecay: 0.1f);
        for (int step = 0; step < 3; step++)
        {
            foreach (var (pa, pb) in a.Parameters().Zip(b.Parameters()))
            {
                var g = Enumerable.Range(0, (int)pa.NumElements).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
                SetGrad(pa, Tensor.From(g, pa.Shape.ToArray()));
                SetGrad(pb, Tensor.From(g, pb.Shape.ToArray()));
            }
            double normA = Gradients.ClipByGlobalNorm(a, 0.5);
            optA.Step();
            var (normB, scale) = Gradients.ClipFactor(b, 0.5);
            Assert.Equal(normA, normB);
            Assert.True(scale < 1f, $"the gradients (norm {normB}) should be clipped to 0.5");
            optB.Step(scale);
        }
        foreach (var ((name, ta), (_, tb)) in a.NamedParameters().Concat(optA.State()).Zip(b.NamedParameters().Concat(optB.State())))
            Assert.True(ta.ToFloatArray().SequenceEqual(tb.ToFloatArray()), $"{name} differs");
        Assert.Equal(1f, Gradients.ClipFactor(b, 0).Scale);   // 0: no clipping
    }

    private (MambaLM Model, Trainer Trainer, List<double> Losses) Setup(string? dir, long steps, long? stopAfter = null, long seed = 3, Func<long, double>? poison = null,
        double? added = null, JsonObject? absentMeans = null)
    {
        var task = new SelectiveCopying(regionLength: 12, dataTokens: 3, dataVocab: 4);
        var o = new SyntheticOptions { DModel = 16, Layers = 1, DState = 4, Batch = 4, Length = 12 };
        var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 5);
        var options = new TrainerOptions { Steps = steps, WarmupSteps = 3, LearningRate = 5e-3f, Seed = seed, OutputDirectory = dir, CheckpointEvery = 4, EvalEvery = 1000, StopAfter = stopAfter };
        var config = new JsonObject { ["task"] = task.Name, ["seed"] = seed };
        if (added is { } a) config["added"] = a;
        var trainer = new Trainer(model, options, config,
            (step, _) =>
            {
                var (loss, tokens) = SyntheticTraining.Loss(model, task, seed, step, o.Batch);
                if (poison?.Invoke(step) is double p) loss = F.Scale(loss, (float)p);
                return (loss, tokens);
            }, absentMeans: absentMeans);
        var losses = new List<double>();
        trainer.StepDone += r => losses.Add(r.Loss);
        return (model, trainer, losses);
    }

    [Fact]
    public void SameSeedGivesTheSameLossCurveBitForBit()
    {
        var (m1, t1, l1) = Setup(null, 12);
        var (m2, t2, l2) = Setup(null, 12);
        t1.Run(); t2.Run();
        Assert.Equal(l1, l2);
        Assert.True(l1[^1] < l1[0], "the loss should go down");
        var (m3, t3, l3) = Setup(null, 12, seed: 4);
        t3.Run();
        Assert.NotEqual(l1, l3);
        foreach (var d in new IDisposable[] { t1, t2, t3, m1, m2, m3 }) d.Dispose();
    }

    [Fact]
    public void InterruptedAndResumedRunEndsWithTheSameWeights()
    {
        var straight = Path.Combine(_dir, "straight");
        var (m1, t1, l1) = Setup(straight, 14);
        t1.Run();
        var resumed = Path.Combine(_dir, "resumed");
        var (m2, t2, _) = Setup(resumed, 14, stopAfter: 6);
        var first = t2.Run();
        Assert.True(first.Interrupted);
        Assert.Equal(6, first.Step);
        t2.Dispose(); m2.Dispose();
        var (m3, t3, l3) = Setup(resumed, 14);
        Assert.True(t3.Resume());
        Assert.Equal(6, t3.Step);
        t3.Run();
        Assert.Equal(l1.Skip(6), l3);
        foreach (var ((n1, p1), (_, p3)) in m1.NamedParameters().Zip(m3.NamedParameters()))
            Assert.True(p1.ToFloatArray().SequenceEqual(p3.ToFloatArray()), $"{n1} differs after resume");
        // metrics.jsonl holds each step once.
        var steps = File.ReadAllLines(Path.Combine(resumed, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["step"]?.GetValue<long>()).Where(s => s is not null).ToList();
        Assert.Equal(Enumerable.Range(1, 14).Select(i => (long?)i), steps);
        foreach (var d in new IDisposable[] { t1, t3, m1, m3 }) d.Dispose();
    }

    [Fact]
    public void NonFiniteStepsAreSkippedThenTrainingStops()
    {
        var (m, t, _) = Setup(null, 20, poison: step => step == 2 ? double.NaN : 1.0);
        var skipped = new List<long>();
        t.StepDone += r => { if (r.Skipped) skipped.Add(r.Step); };
        var result = t.Run();
        Assert.Equal([3L], skipped);
        Assert.True(result.Completed);
        t.Dispose(); m.Dispose();

        var (m2, t2, _) = Setup(null, 20, poison: step => step >= 4 ? double.PositiveInfinity : 1.0);
        var e = Assert.Throws<TrainingDivergedException>(() => t2.Run());
        Assert.Contains("5 steps in a row", e.Message);
        t2.Dispose(); m2.Dispose();
    }

    [Fact]
    public void CheckpointOfAnotherRunIsRefusedAndLeftUntouched()
    {
        var dir = Path.Combine(_dir, "other");
        var (m1, t1, _) = Setup(dir, 4);
        t1.Run();
        t1.Dispose(); m1.Dispose();
        var path = Path.Combine(dir, Checkpoint.FileName);
        var before = File.ReadAllBytes(path);
        var (m2, t2, _) = Setup(dir, 4, seed: 99);
        var e = Assert.Throws<InvalidDataException>(() => t2.Resume());
        Assert.Contains("'seed' is 3 there, 99 now", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        t2.Dispose(); m2.Dispose();

        File.WriteAllBytes(path, before[..100]);
        var (m3, t3, _) = Setup(dir, 4);
        Assert.Throws<IO.SafetensorsFormatException>(() => t3.Resume());
        t3.Dispose(); m3.Dispose();
    }

    /// <summary>A key added to the run configuration after a checkpoint was written: the checkpoint resumes when the run
    /// asks for the value the missing key stands for, and is refused (untouched) otherwise or when nothing is said.</summary>
    [Fact]
    public void ACheckpointWithoutANewerKeyResumesAtThatKeysDefaultOnly()
    {
        var dir = Path.Combine(_dir, "older");
        var (m1, t1, _) = Setup(dir, 8, stopAfter: 4);
        t1.Run();
        t1.Dispose(); m1.Dispose();
        var path = Path.Combine(dir, Checkpoint.FileName);
        var before = File.ReadAllBytes(path);
        var absent = new JsonObject { ["added"] = 0.0 };
        var (m2, t2, _) = Setup(dir, 8, added: 0.5, absentMeans: absent);
        Assert.Contains("'added' is absent (standing for 0) there, 0.5 now", Assert.Throws<InvalidDataException>(() => t2.Resume()).Message);
        t2.Dispose(); m2.Dispose();
        var (m3, t3, _) = Setup(dir, 8, added: 0.0);
        Assert.Contains("'added' is absent there, 0 now", Assert.Throws<InvalidDataException>(() => t3.Resume()).Message);
        t3.Dispose(); m3.Dispose();
        Assert.Equal(before, File.ReadAllBytes(path));
        var (m4, t4, _) = Setup(dir, 8, added: 0.0, absentMeans: absent);
        Assert.True(t4.Resume());
        Assert.Equal(4, t4.Step);
        t4.Dispose(); m4.Dispose();
    }

    [Fact]
    public void TasksAreDeterministicAndWellFormed()
    {
        var sc = new SelectiveCopying(regionLength: 20, dataTokens: 4, dataVocab: 5);
        var (a, ta) = sc.Sample(SplitMixRandom.ForStep(1, 7), 3);
        var (b, _) = sc.Sample(SplitMixRandom.ForStep(1, 7), 3);
        Assert.Equal(a, b);
        for (int r = 0; r < 3; r++)
        {
            var row = a.Skip(r * 24).Take(24).ToArray();
            var data = row.Take(20).Where(t => t != 0).ToArray();
            Assert.Equal(4, data.Length);
            Assert.All(row.Skip(20), t => Assert.Equal(6, t));
            Assert.Equal(data, ta.Skip(r * 24 + 20).Take(4).ToArray());
            Assert.All(ta.Skip(r * 24).Take(20), t => Assert.Equal(-100, t));
        }
        var ih = new InductionHeads(length: 30, vocab: 6);
        var (x, y) = ih.Sample(SplitMixRandom.ForStep(2, 1), 2, scale: 4);
        Assert.Equal(2 * 120, x.Length);
        for (int r = 0; r < 2; r++)
        {
            var row = x.Skip(r * 120).Take(120).ToArray();
            Assert.Equal(6, row[^1]);
            int p = Array.IndexOf(row, 6L);
            Assert.True(p < 117);
            Assert.Equal(row[p + 1], y[r * 120 + 119]);
            Assert.Equal(1, y.Skip(r * 120).Take(120).Count(t => t >= 0));
        }
    }
}

public class TrainingAccumulationTests
{
    [Fact]
    public void TwoMicroBatchesOfTheSameDataEqualOneStep()
    {
        var task = new Mamba4.Tasks.Synthetic.SelectiveCopying(regionLength: 10, dataTokens: 2, dataVocab: 3);
        var o = new Mamba4.Tasks.Synthetic.SyntheticOptions { DModel = 8, Layers = 1, DState = 2, Batch = 3 };
        float[] Run(int accumulate)
        {
            using var model = new Mamba4.Models.MambaLM(Mamba4.Tasks.Synthetic.SyntheticTraining.ModelConfig(o, task), seed: 1);
            using var trainer = new Trainer(model, new TrainerOptions { Steps = 3, WarmupSteps = 1, GradientAccumulation = accumulate, ClipNorm = 0 },
                new System.Text.Json.Nodes.JsonObject(), (step, _) => Mamba4.Tasks.Synthetic.SyntheticTraining.Loss(model, task, 1, step, o.Batch));
            trainer.Run();
            return model.Parameters().SelectMany(p => p.ToFloatArray()).ToArray();
        }
        var one = Run(1);
        var two = Run(2);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i], 1e-5);
    }
}
