using System.Diagnostics;

namespace Mamba4.Tests;

/// <summary>
/// CUDA kernels run on CPU threads, without a GPU (scripts/cuda-emulation: the .cu source compiled as C++ against a shim of
/// blocks, barriers and warp shuffles), against the same math in double. They check the kernels' logic and index math
/// where the GPU tests cannot run (CI, sessions without a GPU), not their timing or the card's rounding. Skipped without
/// g++ or python3.
/// </summary>
public class CudaKernelEmulationTests
{
    /// <summary>The fused decoding step (mamba_step.cu: in_proj, x_proj, scan, out_proj, the head and its arg-max), three
    /// steps: one stream with F32 weights; three with BF16 weights on a grid of 3 blocks (warps loop over rows); two with
    /// rows read one value at a time, conv width 3 and no biases.</summary>
    [Fact]
    public void DecodingStepKernelsMatchTheStepInDouble() => RunScript("step-check.sh", "1 4 8");

    /// <summary>The selective scan's time-parallel forward (ScanForwardPlan.Lanes / LanesWide: scan_forward_lanes*) in F32,
    /// BF16 and F32 in with BF16 out, partial tiles, blocks past D, without z, bias, h0, D or softplus, misaligned tensors.</summary>
    [Fact]
    public void LanesForwardKernelMatchesTheRecurrenceInDouble() => RunScript("scan-fwd-check.sh", null);

    private static void RunScript(string script, string? shapes)
    {
        foreach (var tool in new[] { "g++", "python3", "bash" })
            if (!OnPath(tool)) Assert.Skip($"{tool} is not installed: the CPU emulation of the CUDA kernels is skipped");
        string path = Path.Combine(RepoRoot(), "scripts", "cuda-emulation", script);
        var start = new ProcessStartInfo("bash", [path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (shapes is not null) start.Environment["SHAPES"] = shapes;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{script} did not finish in 5 minutes");
        }
        Assert.True(process.ExitCode == 0, $"{script} failed (exit {process.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, tool)));

    /// <summary>The checkout the test binary was built in: the folder above it that holds scripts/cuda-emulation.</summary>
    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "scripts", "cuda-emulation"))) return dir.FullName;
        Assert.Skip("scripts/cuda-emulation is not above the test binary (a packed test build): the emulation is skipped");
        return "";
    }
}
