using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// The selective scan written as the plain recurrence, one (batch, channel) at a time, in double
/// precision: the twin that the fused kernel (<c>CpuBackend.SelectiveScan.cs</c>) is tested against,
/// as mamba_ssm keeps <c>selective_scan_ref</c> beside its CUDA kernel. Slow on purpose; reads like the math.
/// <code>
/// dt_t     = softplus(delta_t[d] + bias[d])        (delta_t[d] + bias[d] without softplus)
/// h_t[n]   = exp(dt_t·A[d,n])·h_{t-1}[n] + dt_t·B_t[n]·u_t[d]      h_{-1} = h0[b,d,n] (0 without h0);  lti: B[d,n]
/// y_t[d]   = Σ_n C_t[n]·h_t[n] + D[d]·u_t[d];     out_t[d] = y_t[d]·silu(z_t[d])   (z optional)
/// </code>
/// Backward, walking t from L−1 down to 0 with g[n] = ∂loss/∂h_t[n] (0 beyond the end):
/// <code>
/// dy_t     = dout_t·silu(z_t);   dz_t = dout_t·y_t·silu'(z_t)          (dy_t = dout_t without z)
/// g[n]    += C_t[n]·dy_t                     dC_t[n] += dy_t·h_t[n]
/// dB_t[n] += g[n]·dt_t·u_t                   du_t     = D·dy_t + Σ_n g[n]·dt_t·B_t[n]
/// dA[n]   += g[n]·a_t[n]·h_{t-1}[n]·dt_t     ddt_t    = Σ_n g[n]·(a_t[n]·h_{t-1}[n]·A[n] + B_t[n]·u_t)
/// dD      += dy_t·u_t                        ddelta_t = ddt_t·σ(delta_t + bias)   (ddt_t without softplus)
/// dbias   += ddelta_t                        g[n]     = a_t[n]·g[n]          (now ∂loss/∂h_{t-1})
/// dh0[b,d,n] = g[n] after t = 0.
/// </code>
/// with a_t[n] = exp(dt_t·A[n]). The tensors may be F32 or F64; everything is computed in double.
/// </summary>
public static class SelectiveScanReference
{
    /// <summary>Writes <c>args.Y</c> (and <c>args.LastState</c> when given).</summary>
    public static void Forward(in SelectiveScanArgs args)
    {
        var p = new Problem(args);
        var output = new double[p.Batch * p.L * p.D];
        var last = new double[p.Batch * p.D * p.N];
        for (int b = 0; b < p.Batch; b++)
            for (int d = 0; d < p.D; d++)
            {
                var h = p.InitialState(b, d);                             // h[n], the state of channel d
                for (int t = 0; t < p.L; t++)
                {
                    double dt = p.Dt(b, t, d), u = p.U[p.I(b, t, d)];
                    double y = p.Skip(d) * u;
                    for (int n = 0; n < p.N; n++)
                    {
                        h[n] = Math.Exp(dt * p.A[d * p.N + n]) * h[n] + dt * p.Bv(b, t, d, n) * u;
                        y += p.Cv(b, t, d, n) * h[n];
                    }
                    output[p.I(b, t, d)] = p.Z is null ? y : y * SiLU(p.Z[p.I(b, t, d)]);
                }
                for (int n = 0; n < p.N; n++) last[(b * p.D + d) * p.N + n] = h[n];
            }
        Write(args.Y, output);
        if (args.LastState is { } ls) Write(ls, last);
    }

    /// <summary>Overwrites every non-null gradient in <paramref name="grads"/> given <c>grads.DY</c>.</summary>
    public static void Backward(in SelectiveScanArgs args, in SelectiveScanGrads grads)
    {
        var p = new Problem(args);
        int bld = p.Batch * p.L * p.D;
        var dOut = grads.DY.ToDoubleArray();
        double[] du = new double[bld], dDelta = new double[bld], dz = new double[bld];
        double[] dA = new double[p.D * p.N], dD = new double[p.D], dBias = new double[p.D];
        double[] dB = new double[p.B.Length], dC = new double[p.C.Length], dH0 = new double[p.Batch * p.D * p.N];

        for (int b = 0; b < p.Batch; b++)
            for (int d = 0; d < p.D; d++)
            {
                // Forward again, keeping every state: hs[t + 1] = h_t, hs[0] = h_{-1} = h0.
                var hs = new double[p.L + 1][];
                hs[0] = p.InitialState(b, d);
                var ys = new double[p.L];
                for (int t = 0; t < p.L; t++)
                {
                    double dt = p.Dt(b, t, d), u = p.U[p.I(b, t, d)];
                    hs[t + 1] = new double[p.N];
                    ys[t] = p.Skip(d) * u;
                    for (int n = 0; n < p.N; n++)
                    {
                        hs[t + 1][n] = Math.Exp(dt * p.A[d * p.N + n]) * hs[t][n] + dt * p.Bv(b, t, d, n) * u;
                        ys[t] += p.Cv(b, t, d, n) * hs[t + 1][n];
                    }
                }

                var g = new double[p.N];                                  // ∂loss/∂h_t
                for (int t = p.L - 1; t >= 0; t--)
                {
                    int i = p.I(b, t, d);
                    double u = p.U[i], raw = p.Delta[i] + p.Bias(d), dt = p.Dt(b, t, d);
                    double dy = dOut[i];
                    if (p.Z is not null)
                    {
                        double z = p.Z[i];
                        dy = dOut[i] * SiLU(z);
                        dz[i] = dOut[i] * ys[t] * SiLUGrad(z);
                    }
                    dD[d] += dy * u;
                    double dU = p.Skip(d) * dy, ddt = 0;
                    for (int n = 0; n < p.N; n++)
                    {
                        double a = Math.Exp(dt * p.A[d * p.N + n]), bn = p.Bv(b, t, d, n);
                        g[n] += p.Cv(b, t, d, n) * dy;
                        dC[p.BcIndex(b, t, d, n)] += dy * hs[t + 1][n];
                        dB[p.BcIndex(b, t, d, n)] += g[n] * dt * u;
                        dA[d * p.N + n] += g[n] * a * hs[t][n] * dt;
                        ddt += g[n] * (a * hs[t][n] * p.A[d * p.N + n] + bn * u);
                        dU += g[n] * dt * bn;
                        g[n] *= a;
                    }
                    du[i] = dU;
                    dDelta[i] = p.Softplus ? ddt * SoftplusGrad(raw) : ddt;
                    dBias[d] += dDelta[i];
                }
                g.CopyTo(dH0, (b * p.D + d) * p.N);
            }

        Write(grads.DU, du);
        Write(grads.DDelta, dDelta);
        Write(grads.DA, dA);
        Write(grads.DB, dB);
        Write(grads.DC, dC);
        if (grads.DD is { } gd) Write(gd, dD);
        if (grads.DZ is { } gz) Write(gz, dz);
        if (grads.DDeltaBias is { } gb) Write(gb, dBias);
        if (grads.DInitialState is { } gh) Write(gh, dH0);
    }

    public static double Softplus(double x) => x > 20 ? x : Math.Log(1 + Math.Exp(x));
    public static double SoftplusGrad(double x) => x > 20 ? 1 : Sigmoid(x);
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
    public static double SiLU(double x) => x * Sigmoid(x);
    public static double SiLUGrad(double x) => Sigmoid(x) * (1 + x * (1 - Sigmoid(x)));

    /// <summary>The inputs as double arrays, with the indexing of the channels-last layout.</summary>
    private sealed class Problem
    {
        public readonly int Batch, L, D, N;
        public readonly bool Selective, Softplus;
        public readonly double[] U, Delta, A, B, C;
        public readonly double[]? SkipD, Z, DeltaBias, H0;

        public Problem(in SelectiveScanArgs a)
        {
            (Batch, L, D, N, Selective, Softplus) = (a.Batch, a.Length, a.Channels, a.StateSize, a.Selective, a.DeltaSoftplus);
            U = a.U.ToDoubleArray();
            Delta = a.Delta.ToDoubleArray();
            A = a.A.ToDoubleArray();
            B = a.B.ToDoubleArray();
            C = a.C.ToDoubleArray();
            SkipD = a.D?.ToDoubleArray();
            Z = a.Z?.ToDoubleArray();
            DeltaBias = a.DeltaBias?.ToDoubleArray();
            H0 = a.InitialState?.ToDoubleArray();
        }

        /// <summary>A copy of h_{-1} of (b, d): h0[b, d, :], or zeros.</summary>
        public double[] InitialState(int b, int d) => H0?.AsSpan((b * D + d) * N, N).ToArray() ?? new double[N];

        /// <summary>Index of [b, t, d] in u, delta, z, y.</summary>
        public int I(int b, int t, int d) => (b * L + t) * D + d;
        /// <summary>Index of B/C's element for (b, t, d, n): [b, t, n] when selective, [d, n] when time-invariant.</summary>
        public int BcIndex(int b, int t, int d, int n) => Selective ? (b * L + t) * N + n : d * N + n;
        public double Bv(int b, int t, int d, int n) => B[BcIndex(b, t, d, n)];
        public double Cv(int b, int t, int d, int n) => C[BcIndex(b, t, d, n)];
        public double Skip(int d) => SkipD?[d] ?? 0;
        public double Bias(int d) => DeltaBias?[d] ?? 0;
        public double Dt(int b, int t, int d)
        {
            double raw = Delta[I(b, t, d)] + Bias(d);
            return Softplus ? SelectiveScanReference.Softplus(raw) : raw;
        }
    }

    private static void Write(Tensor t, double[] values)
    {
        if (t.NumElements != values.Length) throw new ArgumentException($"expected {values.Length} elements, got {t.Shape}");
        switch (t.DType)
        {
            case DType.F64: values.CopyTo(t.AsSpan<double>()); break;
            case DType.F32:
                var s = t.AsSpan<float>();
                for (int i = 0; i < values.Length; i++) s[i] = (float)values[i];
                break;
            default: throw new ArgumentException($"the reference scan writes F32 or F64 tensors, got {t.DType}");
        }
    }
}
