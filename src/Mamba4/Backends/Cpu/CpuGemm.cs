namespace Mamba4.Backends.Cpu;

/// <summary>Single-precision GEMM (placeholder until the kernel lands).</summary>
public static class CpuGemm
{
    public static string BlasDescription => "not probed";
}
