using System.Runtime.InteropServices;

namespace Mamba4.Tensors;

/// <summary>bfloat16: the top 16 bits of an IEEE float32 (8-bit exponent, 7-bit mantissa).</summary>
[StructLayout(LayoutKind.Sequential, Size = 2)]
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    public readonly ushort Bits;

    private BFloat16(ushort bits) => Bits = bits;

    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>float32 → bfloat16, round to nearest even; NaN stays NaN.</summary>
    public static explicit operator BFloat16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000) return new BFloat16((ushort)((u >> 16) | 0x0040)); // quiet NaN
        uint rounding = 0x7FFF + ((u >> 16) & 1);
        return new BFloat16((ushort)((u + rounding) >> 16));
    }

    public static implicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value.Bits << 16);

    public bool Equals(BFloat16 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is BFloat16 b && Equals(b);
    public override int GetHashCode() => Bits;
    public override string ToString() => ((float)this).ToString("G4", System.Globalization.CultureInfo.InvariantCulture);
}
