using System.CommandLine;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics.Arm;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Backends.Cuda;
using Mamba4.Backends.Cuda.Native;

namespace Mamba4.Cli;

internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "also print this Hugging Face Mamba directory's config and parameter count" };
        var cmd = new Command("info", "Show version, CPU features, SIMD width, threads, whether OpenBLAS was found, and the CUDA GPUs (or why there are none).\n\nExamples:\n  mamba4 info\n  mamba4 info --model ./mamba-130m-hf");
        cmd.Options.Add(model);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            Console.WriteLine($"mamba4 {EngineSettings.LibraryVersion}  (.NET {Environment.Version}, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture})");
            var features = new List<string>();
            if (Avx.IsSupported) features.Add("AVX");
            if (Avx2.IsSupported) features.Add("AVX2");
            if (Fma.IsSupported) features.Add("FMA");
            if (Avx512F.IsSupported) features.Add("AVX-512F");
            if (AdvSimd.Arm64.IsSupported) features.Add("NEON");
            Console.WriteLine($"cpu features: {(features.Count == 0 ? "none" : string.Join(' ', features))}");
            Console.WriteLine($"simd width: {Vector<float>.Count * 32} bits (Vector256 accelerated: {Vector256.IsHardwareAccelerated})");
            Console.WriteLine($"threads: {CpuParallel.Threads} (cores: {Environment.ProcessorCount})");
            Console.WriteLine($"blas: {CpuGemm.BlasDescription}");
            Console.WriteLine($"numerics (recorded in every run.json and checkpoint): {Backend.Settings.ToJson().ToJsonString()}");
            Console.WriteLine($"settings from the environment: {string.Join(", ", EngineSettings.Variables)}");
            PrintGpus();
            if (parse.GetValue(model) is { } dir)
            {
                using var lm = Mamba4.Models.MambaLM.FromPretrained(dir, AllowNonFiniteOption.LoadOptions(parse, allowNonFinite));
                Console.WriteLine($"model: {Path.GetFullPath(dir)}");
                Console.WriteLine(lm.Config.ToJson());
                Console.WriteLine($"parameters: {lm.ParameterCount:N0}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Each CUDA GPU (name, memory, compute capability) with the driver and NVRTC versions, or why there is none.</summary>
    private static void PrintGpus()
    {
        if (CudaBackend.Unavailable is { } reason)
        {
            Console.WriteLine($"cuda: unavailable ({reason})");
            return;
        }
        Console.WriteLine($"cuda: {CudaBackend.DeviceCount} GPU(s), driver CUDA {CudaBackend.DriverVersionText}, NVRTC {CudaBackend.NvrtcVersion}");
        for (int i = 0; i < CudaBackend.DeviceCount; i++)
        {
            try
            {
                var gpu = (CudaBackend)Backend.For(Tensors.Device.Cuda(i));
                var (free, total) = gpu.MemoryInfo();
                Console.WriteLine($"  cuda:{i}: {gpu.DeviceName}, {total / (1024.0 * 1024 * 1024):F1} GiB ({free / (1024.0 * 1024 * 1024):F1} GiB free), " +
                    $"compute capability {gpu.ComputeCapability.Major}.{gpu.ComputeCapability.Minor} ({gpu.Architecture}), {gpu.Multiprocessors} SMs");
            }
            catch (Exception e) when (e is NotSupportedException or CudaException)
            {
                Console.WriteLine($"  cuda:{i}: cannot be used ({e.Message})");
            }
        }
    }
}
