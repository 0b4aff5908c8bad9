using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>Shape and dtype validation shared by the ops: errors name the op, the argument and what was expected.</summary>
internal static class OpCheck
{
    public static void F32(string op, string arg, Tensor t)
    {
        if (t.DType != DType.F32) throw new ArgumentException($"{op}: {arg} must be F32, got {t.DType} {t.Shape}");
    }

    public static void SameDevice(string op, Tensor a, Tensor b)
    {
        if (a.Device != b.Device) throw new ArgumentException($"{op}: tensors are on different devices ({a.Device} and {b.Device})");
    }

    /// <summary>
    /// Data made on the host for a model on a GPU: <paramref name="t"/> (not requiring a gradient) on the CPU while
    /// <paramref name="like"/> is on a device is copied there (as Embedding does with ids). Otherwise unchanged.
    /// </summary>
    public static Tensor OnDeviceOf(Tensor t, Tensor like) =>
        t.Device.IsCpu && !like.Device.IsCpu && !t.RequiresGrad ? t.To(like.Device) : t;

    public static void SameShape(string op, string argA, Tensor a, string argB, Tensor b)
    {
        if (a.Shape != b.Shape) throw new ArgumentException($"{op}: {argA} {a.Shape} and {argB} {b.Shape} must have the same shape");
    }

    public static void Shape(string op, string arg, Tensor t, params int[] expected)
    {
        if (t.Shape != new Shape(expected)) throw new ArgumentException($"{op}: {arg} must have shape [{string.Join(", ", expected)}], got {t.Shape}");
    }

    public static void Rank(string op, string arg, Tensor t, int rank)
    {
        if (t.Rank != rank) throw new ArgumentException($"{op}: {arg} must have rank {rank}, got {t.Shape}");
    }
}
