using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests;

/// <summary>
/// BF16/F16 weights kept narrow on the GPU (cublasGemmEx with F32 accumulation, the narrow embedding kernel) against
/// the CPU's narrow kernels on the same weights, and int8 checkpoints loaded onto the GPU (widened to BF16).
/// </summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaNarrowWeightTests
{
    [Theory]
    [InlineData(DType.BF16, 1)]
    [InlineData(DType.BF16, 5)]
    [InlineData(DType.BF16, 70)]
    [InlineData(DType.F16, 1)]
    [InlineData(DType.F16, 70)]
    public void LinearMatchesTheCpu(DType dtype, int rows)
    {
        _ = Gpu;
        var rng = new Random(11);
        var (w, _) = NarrowWeightTests.NarrowWeight(dtype, 33, 100, rng);
        using (w)
        {
            using var x = Random(rng, rows, 100);
            using var bias = Random(rng, 33);
            using var _ = GradMode.NoGrad();
            using var cpu = F.Linear(x, w, bias);
            using var wg = w.To(Cuda);
            using var xg = x.To(Cuda);
            using var bg = bias.To(Cuda);
            Assert.Equal(dtype, wg.DType);
            using var gpu = F.Linear(xg, wg, bg);
            Assert.Equal(Cuda, gpu.Device);
            // The GPU rounds x to the weight's type (BF16: 8 bits of mantissa) before the tensor-core product.
            Close(cpu, gpu, dtype == DType.BF16 ? 2e-2 : 4e-3, $"Linear {dtype} rows {rows}");
        }
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void EmbeddingMatchesTheCpuExactly(DType dtype)
    {
        _ = Gpu;
        var (w, _) = NarrowWeightTests.NarrowWeight(dtype, 9, 13, new Random(5));
        using (w)
        {
            using var ids = Tensor.From(new long[] { 4, 1, 8, 0 }, 2, 2);
            using var _ = GradMode.NoGrad();
            using var cpu = F.Embedding(w, ids);
            using var wg = w.To(Cuda);
            using var gpu = F.Embedding(wg, ids);
            Close(cpu, gpu, 0, $"Embedding {dtype}");
        }
    }

    [Theory]
    [InlineData("int8")]
    [InlineData("bf16")]
    public void NarrowCheckpointsGenerateTheFixtureIdsOnTheGpu(string precision)
    {
        _ = Gpu;
        var fixture = Fixtures.Path_("hf-mamba");
        var dir = Directory.CreateTempSubdirectory("mamba4-cuda-precision-").FullName;
        try
        {
            Quantize.Run(new QuantizeSettings { Model = fixture, Out = dir, Int8 = precision == "int8", DType = precision == "int8" ? null : DType.BF16 }, TextWriter.Null);
            using var model = MambaLM.FromPretrained(dir, new ModelLoadOptions { Device = Cuda });
            Assert.Equal(Cuda, model.LmHead.Device);
            Assert.Equal(DType.BF16, model.Backbone.Layers[0].Mixer.InProj.Weight.DType);   // I8 is widened to BF16 on the GPU
            using var reference = SafetensorsFile.Open(Path.Combine(fixture, "reference.safetensors"));
            var prompt = reference.Get("generate.prompt").ToInt64Array();
            var expected = reference.Get("generate.output").ToInt64Array();
            Assert.Equal(expected, Generator.Greedy(model, prompt, expected.Length - prompt.Length));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
