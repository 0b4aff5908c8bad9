using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// The Mamba output gate (Ops/Gate.cs): out = y · silu(z);  dy = dout · silu(z),  dz = dout · y · silu'(z).
public sealed unsafe partial class CpuBackend
{
    public void GateForward(Tensor y, Tensor z, Tensor output) =>
        Simd.ParallelMap<Gate>(y.F32, z.F32, output.F32, y.NumElements);

    public void GateBackward(Tensor y, Tensor z, Tensor dOut, Tensor dy, Tensor dz)
    {
        // dy = dout · silu(z);  dz = dout · y · silu'(z)
        float* py = y.F32, pz = z.F32, pd = dOut.F32, pdy = dy.F32, pdz = dz.F32;
        CpuParallel.For(y.NumElements, Simd.ParallelThreshold / 2, (s, e) =>
        {
            long n = e - s;
            Simd.Map<Gate>(pd + s, pz + s, pdy + s, n);
            Simd.Map<SiLUGrad>(pz + s, pd + s, pdz + s, n);
            Simd.Map<MulOp>(pdz + s, py + s, pdz + s, n);
        });
    }

    // y·silu(z)
    internal struct Gate : IBinaryOp
    {
        public static float Apply(float y, float z) => y * z * Simd.Sigmoid(z);
        public static Vector256<float> Apply(Vector256<float> y, Vector256<float> z) => y * z * Simd.Sigmoid(z);
    }

    internal struct MulOp : IBinaryOp
    {
        public static float Apply(float a, float b) => a * b;
        public static Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a * b;
    }
}
