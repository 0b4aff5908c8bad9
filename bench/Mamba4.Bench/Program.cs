using Mamba4.Bench;

// The engine's environment (MAMBA4_BLAS, MAMBA4_THREADS, MAMBA4_CUDA_*), read once as the tool does.
Mamba4.Backends.Backend.Configure(Mamba4.Backends.EngineSettings.FromEnvironment());

// dotnet run --project bench/Mamba4.Bench -c Release -- <name>   (name: all, or one of the keys below)
var benchmarks = new Dictionary<string, Action>
{
    ["gemm"] = GemmBench.Run,
    ["scan"] = ScanBench.Run,
    ["ssd"] = SsdScanBench.Run,
    ["ops"] = OpsBench.Run,
    ["generate"] = GenerateBench.Run,
    ["train"] = TrainBench.Run,
    ["train-memory"] = TrainMemoryBench.Run,
    ["train-traffic"] = TrainTrafficBench.Run,
    ["prefill"] = () => PrefillBench.Run(args),
    ["scaling"] = ScalingBench.Run,
    ["lm"] = () => LmBench.Run(args),
    ["tokenizer"] = TokenizerBench.Run,
    ["cuda"] = CudaBench.Run,
    ["cuda-model"] = CudaModelBench.Run,
    ["cuda-ssd"] = CudaSsdBench.Run,
    ["serve"] = ServeBench.Run,
    ["reclen"] = () => RecLenBench.Run(args),
    ["receff"] = () => RecEffBench.Run(args),
    ["precision"] = () => PrecisionBench.Run(args),
    ["scale"] = () => ScaleBench.Run(args),
    ["induction-probe"] = () => InductionProbe.Run(args),
};

var name = args.Length > 0 ? args[0] : "all";
if (name == "all")
    foreach (var (key, run) in benchmarks)
    {
        if (key is "lm" or "train-memory" or "train-traffic" or "prefill" or "serve" or "reclen" or "receff" or "precision" or "scale" or "induction-probe") continue; // a training run with a wall-clock budget, a server under load, minutes of long histories: ask for them by name
        run();
    }
else if (benchmarks.TryGetValue(name, out var run)) run();
else
{
    Console.Error.WriteLine($"unknown benchmark '{name}'; choose all, {string.Join(", ", benchmarks.Keys)}");
    return 1;
}
return 0;
