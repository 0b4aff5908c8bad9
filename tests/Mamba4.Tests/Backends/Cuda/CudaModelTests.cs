using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Backends.Cuda.Native;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>The fixture models moved to the GPU with Module.To: logits, loss, every gradient, greedy generation.</summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaModelTests
{
    /// <summary>transformers' fixtures: HF Mamba (../shared/fixtures) and Falcon-Mamba (tests/fixtures, issue 18).</summary>
    private static string LmFixture(string name) => name == "hf-mamba" ? Fixtures.Path_(name) : Fixtures.Repo(name);

    [Theory]
    [InlineData("hf-mamba")]
    [InlineData("falcon-mamba")]
    [InlineData("mamba2")]
    public void LogitsLossAndEveryGradientOnGpu(string fixture)
    {
        _ = Gpu;
        var dir = LmFixture(fixture);
        using var model = MambaLM.FromPretrained(dir);
        var names = model.NamedParameters().Select(p => (p.Name, p.Tensor)).ToList();
        model.To(Cuda);
        Assert.Equal(names, model.NamedParameters().Select(p => (p.Name, p.Tensor)).ToList());   // same tensors, same names
        Assert.All(model.Parameters(), p => Assert.Equal(Cuda, p.Device));
        if (model.Config.TieEmbeddings) Assert.Same(model.Backbone.Embeddings.Weight, model.LmHead);   // still tied after the move
        else Assert.NotSame(model.Backbone.Embeddings.Weight, model.LmHead);                         // mamba2's fixture is untied

        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var scope = new TensorScope();
        var ids = reference.Get("input_ids");
        var hidden = new List<Tensor>();
        var logits = model.Forward(ids, hiddenStates: hidden);
        Assert.Equal(Cuda, logits.Device);
        ModelFixtureTests.AssertClose(reference.Get("logits").ToDoubleArray(), logits.ToFloatArray(), 1e-5, 1e-5, "logits");
        for (int i = 0; i < hidden.Count; i++)
            ModelFixtureTests.AssertClose(reference.Get($"hidden_states.{i}").ToDoubleArray(), hidden[i].ToFloatArray(), 1e-5, 1e-5, $"hidden_states.{i}");
        // The loss from the logits, then the head fused with the loss (no logits), then that with the mixers' inner ops
        // rerun in the backward (Recompute), then with the conv's per-element kernels (CudaBackend.TiledConv off; the tiled
        // ones are the default): the same loss and gradients, each against transformers' float64 reference.
        var gpu = Gpu;
        foreach (var (makeLoss, path) in new (Func<Tensor>, string)[] { (() => model.Loss(ids, logits), "unfused "), (() => model.Loss(ids), "fused "), (() => model.Loss(ids), "recomputed "), (() => model.Loss(ids), "per-element conv ") })
        {
            model.Recompute = path == "recomputed ";
            gpu.TiledConv = path != "per-element conv ";
            Tensor loss;
            try { loss = makeLoss(); loss.Backward(); }
            finally { gpu.TiledConv = true; }
            Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
            foreach (var (name, p) in model.NamedParameters())
            {
                Assert.Equal(Cuda, p.Grad!.Device);
                ModelFixtureTests.AssertClose(reference.Get("grad." + name).ToDoubleArray(), p.Grad!.ToFloatArray(), 1e-4, 1e-5, path + "grad." + name);
            }
            model.ZeroGrad();
        }
    }

    [Theory]
    [InlineData("hf-mamba")]
    [InlineData("falcon-mamba")]
    [InlineData("mamba2")]
    public void GreedyGenerationIdenticalOnGpu(string fixture)
    {
        _ = Gpu;
        var dir = LmFixture(fixture);
        using var model = MambaLM.FromPretrained(dir);
        model.To(Cuda);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        Assert.Equal(expected, Inference.Generator.Greedy(model, prompt, expected.Length - prompt.Length));
    }

    [Theory]
    [InlineData("mamba4rec-1layer", 1)]
    [InlineData("mamba4rec-2layer", 2)]
    public void Mamba4RecFixtureOnGpu(string fixture, int layers)
    {
        _ = Gpu;
        var dir = Fixtures.Path_(fixture);
        using var weights = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var items = weights.Info("item_embedding.weight").Shape;
        using var model = new Mamba4Rec(new Mamba4RecConfig
        {
            NItems = items[0], HiddenSize = items[1], NumLayers = layers, DState = 8, DConv = 4, Expand = 2,
            InnerSize = 64, Dropout = 0f, LayerNormEps = 1e-12f,
        });
        model.LoadSafetensors(Path.Combine(dir, "model.safetensors"));
        model.Eval();
        model.To(Cuda);
        using var scope = new TensorScope();
        var seqOutput = model.Forward(reference.Get("item_seq"), reference.Get("item_seq_len"));
        ModelFixtureTests.AssertClose(reference.Get("seq_output").ToDoubleArray(), seqOutput.ToFloatArray(), 1e-5, 1e-5, "seq_output");
        var scores = model.Scores(seqOutput);
        ModelFixtureTests.AssertClose(reference.Get("scores").ToDoubleArray(), scores.ToFloatArray(), 1e-5, 1e-5, "scores");
        var loss = F.CrossEntropy(scores, reference.Get("pos_items"));
        Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
        loss.Backward();
        foreach (var (name, p) in model.NamedParameters())
            ModelFixtureTests.AssertClose(reference.Get("grad." + name).ToDoubleArray(), p.Grad!.ToFloatArray(), 1e-4, 1e-5, "grad." + name);
    }

    [Theory]
    [InlineData("mamba1")]
    [InlineData("mamba2")]
    public void RecurrentStepEqualsParallelForwardOnGpu(string mixer)
    {
        _ = Gpu;
        var config = mixer == "mamba1" ? new MambaConfig { DModel = 16, NLayer = 2, DState = 16, DConv = 4, VocabSize = 37 } : RecurrentStepTests.Small(mixer, 37);
        using var model = new MambaLM(config, seed: 3);
        model.To(Cuda);
        var rng = new Random(1);
        const int length = 300;
        var ids = Enumerable.Range(0, length).Select(_ => (long)rng.Next(37)).ToArray();
        using var noGrad = GradMode.NoGrad();
        float[] parallel;
        using (var scope = new TensorScope()) parallel = model.Forward(Tensor.From(ids, 1, length)).ToFloatArray();
        using var state = model.NewState(1);
        double worst = 0;
        for (int t = 0; t < length; t++)
        {
            using var scope = new TensorScope();
            var step = model.Step(Tensor.From([ids[t]], 1), state).ToFloatArray();
            for (int v = 0; v < 37; v++) worst = Math.Max(worst, Math.Abs(step[v] - parallel[t * 37 + v]) / (1 + Math.Abs(parallel[t * 37 + v])));
        }
        Assert.True(worst < 2e-4, $"max relative difference step vs parallel on the GPU: {worst:G3}");
    }
}

/// <summary>Failure paths on a GPU machine: a kernel that does not compile, out of device memory, a device that does not exist.</summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaFailureTests
{
    [Fact]
    public void CompileErrorCarriesTheNvrtcLog()
    {
        var gpu = Gpu;
        var e = Assert.Throws<CudaCompileException>(() =>
            CudaCompiler.Compile("broken.cu", "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }", CudaCompiler.Options(gpu.Architecture)));
        Assert.Contains("undefined_name", e.Log);
        Assert.Contains("broken.cu", e.Message);
    }

    /// <summary>Every kernel file compiles (each compile group of a file that splits its instantiations, and its shared
    /// kernels alone), and every name of
    /// the generated table (Kernels.ByFile, macro-expanded at build time) is a function of the module the backend loads for
    /// it: the table, its groups and the modules agree exactly where it counts.</summary>
    [Fact]
    public void EveryKernelFileCompilesForThisGpuAndHoldsEveryNameOfTheTable()
    {
        var gpu = Gpu;
        foreach (var (file, group) in CudaCompiler.CompileUnits())
            Assert.NotEmpty(CudaCompiler.Cubin(file, CudaCompiler.Program(file), gpu.Architecture, group));
        Assert.Equal(CudaCompiler.KernelFiles().Order(), Kernels.ByFile.Keys.Order());
        foreach (var (file, names) in Kernels.ByFile)
            foreach (var name in names) _ = gpu.KernelResources(file, name);   // cuModuleGetFunction throws on a missing name
        var (regs, local) = gpu.KernelResources(Kernels.SelectiveScan.File, Kernels.SelectiveScan.ScanBackwardNs4Tpc4SelPf);
        Console.WriteLine($"scan_backward_ns4_tpc4_sel_pf: {regs} registers, {local} B local memory");
    }

    /// <summary>Each compile group's cubin defines exactly the kernels the table gives it and the shared ones (group −1: the
    /// shared ones alone), so -DKERNEL_GROUP reaches NVRTC and no kernel labelled shared is missing from a group. A kernel
    /// is found by its name as a string of the cubin's ELF string tables: alone (the symbol) or after ".text." etc.</summary>
    [Fact]
    public void EachCompileGroupDefinesExactlyItsKernelsAndTheSharedOnes()
    {
        var gpu = Gpu;
        foreach (var (file, groups) in Kernels.Groups)
            foreach (int group in groups.Values.Where(g => g > 0).Distinct().Append(-1))
            {
                string strings = System.Text.Encoding.Latin1.GetString(CudaCompiler.Cubin(file, CudaCompiler.Program(file), gpu.Architecture, group));
                foreach (var (name, of) in groups)
                {
                    bool defined = strings.Contains("\0" + name + "\0") || strings.Contains("." + name + "\0");
                    Assert.True(defined == (of == 0 || of == group), $"{file}, group {group}: {name} (group {of}) is {(defined ? "" : "not ")}in the cubin");
                }
            }
    }

    [Fact]
    public void OutOfDeviceMemoryIsAClearException()
    {
        var gpu = Gpu;
        var e = Assert.Throws<CudaOutOfMemoryException>(() => gpu.Allocate(1L << 50));
        Assert.Contains("out of device memory", e.Message);
        using var t = Tensor.Zeros(new Shape(10), DType.F32, Cuda);   // still usable afterwards
        Assert.Equal(new float[10], t.ToFloatArray());
    }

    [Fact]
    public void MissingDeviceIsNotSupported()
    {
        _ = Gpu;
        var e = Assert.Throws<NotSupportedException>(() => Backend.For(Device.Cuda(1000)));
        Assert.Contains("cuda:1000", e.Message);
    }
}
