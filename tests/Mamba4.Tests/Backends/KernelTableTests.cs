using System.Text.RegularExpressions;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The kernel name table generated at build time from Kernels/*.cu (Kernels, GenerateKernelTable.cs): the names the CUDA
/// backend composes at run time all exist, macro-defined kernels are listed, removed variants are gone. Runs without a GPU.
/// </summary>
public class KernelTableTests
{
    private static IReadOnlySet<string> Scan => Kernels.ByFile[Kernels.SelectiveScan.File];

    private static readonly DType[] ScanTypes = [DType.F32, DType.BF16, DType.F16];

    /// <summary>Every (NS, TPC) that <see cref="CudaBackend.ScanSplit"/> gives for d_state 1 … 600 and the given bound.</summary>
    private static IEnumerable<(int Ns, int Tpc)> Splits(int max)
    {
        for (int n = 1; n <= 600; n++)
        {
            (int, int) split;
            try { split = CudaBackend.ScanSplit(n, max); }
            catch (NotSupportedException) { continue; }   // d_state beyond 32·max: refused with a clear message, nothing composed
            yield return split;
        }
    }

    [Fact]
    public void EveryScanKernelNameTheBackendComposesExists()
    {
        var missing = new SortedSet<string>();
        // forward and prepare: the default bound 16 and every states-per-thread override (1, 2, 4, 8, 16)
        foreach (int max in new[] { 1, 2, 4, 8, 16 })
            foreach (var (ns, tpc) in Splits(max).Distinct())
                foreach (bool selective in new[] { true, false })
                    foreach (var type in ScanTypes)
                        foreach (var name in new[] { CudaBackend.ForwardKernel(ns, tpc, selective, type, type), CudaBackend.PrepareKernel(ns, tpc, selective, type) })
                            if (!Scan.Contains(name)) missing.Add(name);
        // the forward writing y in BF16 from F32 inputs
        foreach (int max in new[] { 1, 2, 4, 8, 16 })
            foreach (var (ns, tpc) in Splits(max).Distinct())
                foreach (bool selective in new[] { true, false })
                    if (CudaBackend.ForwardKernel(ns, tpc, selective, DType.F32, DType.BF16) is var name && !Scan.Contains(name)) missing.Add(name);
        // the time-parallel forward (lanes) of every input type, and with BF16 y from F32 inputs
        foreach (bool wide in new[] { false, true })
        {
            foreach (var type in ScanTypes)
                if (CudaBackend.LanesKernel(type, type, wide) is var name && !Scan.Contains(name)) missing.Add(name);
            if (CudaBackend.LanesKernel(DType.F32, DType.BF16, wide) is var obf16 && !Scan.Contains(obf16)) missing.Add(obf16);
        }
        // backward: at most 4 states per thread
        foreach (var (ns, tpc) in Splits(4).Distinct())
            foreach (bool selective in new[] { true, false })
                foreach (var type in ScanTypes)
                    foreach (var gradientType in type == DType.F32 ? new[] { type, DType.BF16 } : [type])   // F32 inputs: dΔ, dz also in BF16
                        if (CudaBackend.BackwardKernel(ns, tpc, selective, type, gradientType) is var name && !Scan.Contains(name)) missing.Add(name);
        Assert.Empty(missing);
    }

    /// <summary>The SSD scan's chunk kernels for every head dim 1..128 (fwd, bf, bx) exist, and db, dc's one width (N in blocks
    /// of 64); and every kernel with chunk products but bx and dcb (F32-accurate in every mode) has its TF32 twin
    /// (CudaBackend.SsdProducts appends _tf32).</summary>
    [Fact]
    public void EverySsdChunkKernelNameTheBackendComposesExists()
    {
        var ssd = Kernels.ByFile[Kernels.SsdScan.File];
        var missing = new SortedSet<string>();
        foreach (var mode in new[] { "fwd", "bf", "bx" })
            for (int columns = 1; columns <= 128; columns++)
                if (!ssd.Contains(CudaBackend.SsdMixKernel(mode, columns))) missing.Add(CudaBackend.SsdMixKernel(mode, columns));
        foreach (var name in new[] { "ssd_mix_db_c4", "ssd_mix_dc_c4" })
            if (!ssd.Contains(name)) missing.Add(name);
        foreach (var name in ssd.Where(k => k.StartsWith("ssd_mix_") && !k.StartsWith("ssd_mix_bx") && !k.EndsWith("_tf32")).Concat(
                     [Kernels.SsdScan.SsdChunkState, Kernels.SsdScan.SsdChunkDstate]))
            if (!ssd.Contains(name + "_tf32")) missing.Add(name + "_tf32");
        Assert.Empty(missing);
    }

    [Fact]
    public void MacroDefinedKernelsAreListedAndRemovedVariantsAreNot()
    {
        Assert.Contains("scan_forward_ns16_tpcx_lti_bf16", Scan);
        Assert.Contains("scan_backward_ns4_tpc32_sel_pf_f16", Scan);
        Assert.Equal("copy_columns_u64", Kernels.Elementwise.CopyColumnsU64);
        Assert.Contains("copy_columns_u8", Kernels.ByFile[Kernels.Elementwise.File]);
        Assert.DoesNotContain(Scan, n => n.Contains("_tpcx_pre"));
        Assert.All(Scan.Where(n => n.StartsWith("scan_backward_")), n => Assert.Matches("_pf(_bf16|_f16|_gbf16)?$", n));
    }

    /// <summary>The scan's kernels are split in compile groups by element type (the backend compiles only the groups a run
    /// needs): the table reads each kernel's group from the `#if KERNEL_GROUP_IS(g)` around it, and every typed kernel sits
    /// in the group of its type suffix — 1 F32, 2 BF16, 3 F16, 4 F32 inputs with BF16 outputs or gradients — while the
    /// untyped ones (carries, conversions, the decode step) are outside every group, so in all of them.</summary>
    [Fact]
    public void ScanKernelsAreGroupedByElementType()
    {
        var groups = Kernels.Groups[Kernels.SelectiveScan.File];
        Assert.Equal(Scan.Order(), groups.Keys.Order());
        static int Expected(string name) =>
            !(name.StartsWith("scan_forward_") || name.StartsWith("scan_prepare_") || name.StartsWith("scan_backward_")) ? 0
            : name.EndsWith("_obf16") || name.EndsWith("_gbf16") ? 4 : name.EndsWith("_bf16") ? 2 : name.EndsWith("_f16") ? 3 : 1;
        Assert.All(groups, kv => Assert.True(Expected(kv.Key) == kv.Value, $"{kv.Key}: group {kv.Value}, expected {Expected(kv.Key)}"));
        Assert.Equal([0, 1, 2, 3, 4], groups.Values.Distinct().Order());
        Assert.Equal(5, groups.Count(kv => kv.Value == 0));
        Assert.DoesNotContain(Kernels.SsdScan.File, Kernels.Groups.Keys);   // files without groups compile whole
    }

    /// <summary>What the GPU runs may compile (the benchmark's parallel warm-up, the model tests): the scan's four groups and
    /// its shared kernels alone (−1), every other kernel file once, whole (0).</summary>
    [Fact]
    public void CompileUnitsAreTheScanGroupsAndEveryOtherFileWhole()
    {
        var units = CudaCompiler.CompileUnits().ToList();
        Assert.Equal([-1, 1, 2, 3, 4], units.Where(u => u.File == Kernels.SelectiveScan.File).Select(u => u.Group).Order());
        var others = units.Where(u => u.File != Kernels.SelectiveScan.File).ToList();
        Assert.All(others, u => Assert.Equal(0, u.Group));
        Assert.Equal(CudaCompiler.KernelFiles().Where(f => f != Kernels.SelectiveScan.File).Order(), others.Select(u => u.File).Order());
    }

    [Fact]
    public void EveryEmbeddedKernelFileIsInTheTableWithEveryKernelWrittenOutInIt()
    {
        Assert.Equal(CudaCompiler.KernelFiles().Order(), Kernels.ByFile.Keys.Order());
        var literal = new Regex(@"^extern ""C"" __global__ void (?:__launch_bounds__\([^)]*\) )?(?!__launch_bounds__)(\w+)\(", RegexOptions.Multiline);
        foreach (var file in CudaCompiler.KernelFiles())
        {
            var written = literal.Matches(CudaCompiler.Source(file)).Select(m => m.Groups[1].Value).ToList();
            Assert.NotEmpty(Kernels.ByFile[file]);
            Assert.All(written, name => Assert.Contains(name, Kernels.ByFile[file]));
        }
    }
}
