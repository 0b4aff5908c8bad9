using System.Runtime.InteropServices;

namespace Mamba4.Backends.Cuda;

/// <summary>One kernel parameter in an 8-byte slot: cuLaunchKernel reads the parameter's own size from its start
/// (little-endian, so an int or float sits in the low bytes). Tensors pass their device address (null → 0).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public readonly struct KernelArg
{
    [FieldOffset(0)] private readonly long _bits;

    private KernelArg(long bits) => _bits = bits;

    public static implicit operator KernelArg(int v) => new(v);
    public static implicit operator KernelArg(long v) => new(v);
    public static implicit operator KernelArg(ulong v) => new((long)v);
    public static implicit operator KernelArg(bool v) => new(v ? 1 : 0);
    public static implicit operator KernelArg(float v) => new(BitConverter.SingleToInt32Bits(v) & 0xffffffffL);
    public static implicit operator KernelArg(nint p) => new(p);
    public static implicit operator KernelArg(Tensor? t) => new(t is null ? 0 : t.DataPointer);
}

/// <summary>A launch dimension (grid or block).</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(int x) => new((uint)x);
    public static implicit operator Dim3(long x) => new((uint)x);
    public override string ToString() => Y == 1 && Z == 1 ? $"{X}" : $"({X},{Y},{Z})";
}
