namespace Mamba4.Bench;

/// <summary>Every knob of the benchmarks, read from the environment here and nowhere else in the benchmark project.</summary>
internal sealed record BenchSettings
{
    /// <summary>Where the device-aware benchmarks run (scaling, serve, train-memory, train-traffic): cpu, cuda, cuda:N. (MAMBA4_DEVICE)</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The device <see cref="Device"/> names, when it parses and its backend is available; otherwise a line
    /// saying why under the benchmark's name, and false (the benchmark is skipped).</summary>
    public bool UsableDevice(string bench, out Mamba4.Tensors.Device device)
    {
        try { device = Mamba4.Tensors.Device.Parse(Device); }
        catch (FormatException e) { Console.WriteLine($"== {bench}: MAMBA4_DEVICE: {e.Message}"); device = default; return false; }
        if (Mamba4.Backends.Backend.IsAvailable(device, out var why)) return true;
        Console.WriteLine($"== {bench} ({device}): skipped ({why})");
        return false;
    }
    /// <summary>The shared folder with data and anchors; null = searched upward from here. (MAMBA4_SHARED)</summary>
    public string? Shared { get; init; }
    /// <summary>Where HTML reports go. (MAMBA4_REPORT_DIR, else $OUT, else runs/bench)</summary>
    public string ReportDirectory { get; init; } = Path.Combine("runs", "bench");
    /// <summary>cuda benchmark: "" = everything, "scan" = the scan tables only, "profile" = a few scan calls for Nsight Compute,
    /// "compile" = every kernel file and compile group into the cubin cache, in parallel;
    /// cuda-model: "generation" / "prefill" = that table only, "flags" = the training step with the tiled and the per-element conv, interleaved,
    /// "region-…" = one region for Nsight Compute. (MAMBA4_CUDA_BENCH)</summary>
    public string CudaMode { get; init; } = "";
    /// <summary>JSON lines written by ../shared/anchors/scan_anchor.py earlier in the same call (scripts/gpu-test.sh). (MAMBA4_SCAN_ANCHOR)</summary>
    public string? ScanAnchorFile { get; init; }
    /// <summary>JSON lines written by ../shared/anchors/model_anchor.py earlier in the same call. (MAMBA4_MODEL_ANCHOR)</summary>
    public string? ModelAnchorFile { get; init; }
    /// <summary>JSON lines written by scripts/ssd_anchor.py (mamba_ssm's Triton SSD) earlier in the same call. (MAMBA4_SSD_ANCHOR)</summary>
    public string? SsdAnchorFile { get; init; }
    /// <summary>generate: interleaved rounds and decode steps per timing. (MAMBA4_GENERATE_ROUNDS, MAMBA4_GENERATE_K)</summary>
    public int GenerateRounds { get; init; } = 48;
    public int GenerateSteps { get; init; } = 8;
    /// <summary>serve: sample (temperature 0.8, top-p 0.95) instead of greedy; tokens a stream; concurrency levels; the bare step table. (MAMBA4_SERVE_*)</summary>
    public bool ServeSample { get; init; }
    public int ServeTokens { get; init; } = 128;
    public int[] ServeLevels { get; init; } = [1, 8, 32, 128];
    public bool ServeSteps { get; init; } = true;
    public bool ServeStepsOnly { get; init; }

    public static BenchSettings Current { get; } = FromEnvironment();

    private static BenchSettings FromEnvironment()
    {
        static string? Get(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        static int Positive(string name, int fallback) => Get(name) is { } v ? int.TryParse(v, out var n) && n > 0 ? n : throw new ArgumentException($"{name}={v}: expected a positive whole number") : fallback;
        var d = new BenchSettings();
        return new BenchSettings
        {
            Device = Get("MAMBA4_DEVICE") ?? d.Device,
            Shared = Get("MAMBA4_SHARED"),
            ReportDirectory = Get("MAMBA4_REPORT_DIR") ?? Get("OUT") ?? d.ReportDirectory,
            CudaMode = Get("MAMBA4_CUDA_BENCH") ?? d.CudaMode,
            ScanAnchorFile = Get("MAMBA4_SCAN_ANCHOR"),
            ModelAnchorFile = Get("MAMBA4_MODEL_ANCHOR"),
            SsdAnchorFile = Get("MAMBA4_SSD_ANCHOR"),
            GenerateRounds = Positive("MAMBA4_GENERATE_ROUNDS", d.GenerateRounds),
            GenerateSteps = Positive("MAMBA4_GENERATE_K", d.GenerateSteps),
            ServeSample = Get("MAMBA4_SERVE_SAMPLE") == "1",
            ServeTokens = Positive("MAMBA4_SERVE_TOKENS", d.ServeTokens),
            ServeLevels = Get("MAMBA4_SERVE_LEVELS") is { } l ? l.Split(',').Select(int.Parse).ToArray() : d.ServeLevels,
            ServeSteps = Get("MAMBA4_SERVE_STEPS") != "0",
            ServeStepsOnly = Get("MAMBA4_SERVE_STEPS_ONLY") == "1",
        };
    }
}
