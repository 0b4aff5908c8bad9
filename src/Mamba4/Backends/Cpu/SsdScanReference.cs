using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Mamba-2's SSD scan written as the plain recurrence, one (batch, head) at a time, in double precision: the twin
/// the chunked kernel (<c>CpuBackend.SsdScan.cs</c>) is tested against, as mamba_ssm keeps <c>ssd_minimal</c> /
/// <c>selective_state_update_ref</c> beside its kernels. Slow on purpose; reads like the math (Ops/SsdScan.cs).
/// Head h reads group h / (H/G) of B and C; S is the (P, N) state of one head.
/// <code>
/// dt_t   = clamp(softplus(dt_t + dtBias), dtMin, dtMax)        a_t = exp(dt_t·A)
/// S_t    = a_t·S_{t−1} + dt_t·x_t ⊗ B_t                        S_{−1} = 0
/// y_t    = S_t·C_t + D·x_t
/// </code>
/// Backward, walking t from L−1 down to 0 with G = ∂loss/∂S_t (0 beyond the end):
/// <code>
/// G     += dy_t ⊗ C_t                  dC_t += S_tᵀ·dy_t           dD   += ⟨dy_t, x_t⟩
/// dx_t   = D·dy_t + dt_t·G·B_t         dB_t += dt_t·Gᵀ·x_t         dA   += dt_t·a_t·⟨G, S_{t−1}⟩
/// ddt_t  = ⟨G, A·a_t·S_{t−1} + x_t ⊗ B_t⟩ · [dtMin ≤ dt_t ≤ dtMax] · σ(dt_t + dtBias)   (σ only with softplus)
/// dDtBias += ddt_t                     G    ←  a_t·G               (now ∂loss/∂S_{t−1})
/// </code>
/// The tensors may be F32 or F64; everything is computed in double.
/// </summary>
public static class SsdScanReference
{
    /// <summary>Writes <c>args.Y</c> (and <c>args.LastState</c> when given).</summary>
    public static void Forward(in SsdScanArgs args)
    {
        var p = new Problem(args);
        var y = new double[p.X.Length];
        var last = new double[p.Batch * p.H * p.P * p.N];
        for (int b = 0; b < p.Batch; b++)
            for (int h = 0; h < p.H; h++)
            {
                var s = new double[p.P * p.N];
                for (int t = 0; t < p.L; t++)
                    p.Step(b, t, h, s, y);
                s.CopyTo(last, (b * p.H + h) * p.P * p.N);
            }
        Write(args.Y, y);
        if (args.LastState is { } ls) Write(ls, last);
    }

    /// <summary>Overwrites every non-null gradient in <paramref name="grads"/> given <c>grads.DY</c>.</summary>
    public static void Backward(in SsdScanArgs args, in SsdScanGrads grads)
    {
        var p = new Problem(args);
        var dy = grads.DY.ToDoubleArray();
        double[] dx = new double[p.X.Length], ddt = new double[p.DtRaw.Length], dB = new double[p.B.Length], dC = new double[p.C.Length];
        double[] dA = new double[p.H], dD = new double[p.H], dDtBias = new double[p.H];
        int pn = p.P * p.N;
        for (int b = 0; b < p.Batch; b++)
            for (int h = 0; h < p.H; h++)
            {
                // Forward again, keeping every state: states[t + 1] = S_t, states[0] = S_{−1} = 0.
                var states = new double[p.L + 1][];
                states[0] = new double[pn];
                for (int t = 0; t < p.L; t++)
                {
                    states[t + 1] = (double[])states[t].Clone();
                    p.Step(b, t, h, states[t + 1], y: null);
                }

                var g = new double[pn];
                for (int t = p.L - 1; t >= 0; t--)
                {
                    int xi = p.XIndex(b, t, h, 0), bc = p.BcIndex(b, t, h, 0);
                    double dt = p.Dt(b, t, h), a = Math.Exp(dt * p.A[h]), skip = p.Skip(h);
                    double[] s = states[t + 1], prev = states[t];
                    double dtGrad = 0, decayGrad = 0;
                    for (int i = 0; i < p.P; i++)
                    {
                        double dyi = dy[xi + i], xv = p.X[xi + i], dxi = skip * dyi;
                        dD[h] += dyi * xv;
                        for (int n = 0; n < p.N; n++)
                        {
                            int k = i * p.N + n;
                            g[k] += dyi * p.C[bc + n];
                            dC[bc + n] += s[k] * dyi;
                            dxi += dt * g[k] * p.B[bc + n];
                            dB[bc + n] += dt * g[k] * xv;
                            decayGrad += g[k] * prev[k];
                            dtGrad += g[k] * xv * p.B[bc + n];
                            g[k] *= a;
                        }
                        dx[xi + i] = dxi;
                    }
                    dtGrad += p.A[h] * a * decayGrad;
                    dA[h] += dt * a * decayGrad;
                    int ti = p.DtIndex(b, t, h);
                    ddt[ti] = dtGrad * p.DtRawGrad(b, t, h);
                    dDtBias[h] += ddt[ti];
                }
            }

        Write(grads.DX, dx);
        Write(grads.DDt, ddt);
        Write(grads.DA, dA);
        Write(grads.DB, dB);
        Write(grads.DC, dC);
        if (grads.DD is { } gd) Write(gd, dD);
        if (grads.DDtBias is { } gb) Write(gb, dDtBias);
    }

    /// <summary>
    /// One decoding step: x, y [batch, H, P]; dt [batch, H]; B, C [batch, G, N]; <paramref name="ssmState"/>
    /// [batch, H, P, N] updated in place — the forward's recurrence at one t.
    /// </summary>
    public static void Step(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias,
        bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y)
    {
        int batch = x.Shape[0], heads = x.Shape[1], headDim = x.Shape[2], n = b.Shape[2];
        // The forward's recurrence at L = 1 from the given state ([b, h, p] is [b, 1, h, p] in memory).
        var p = new Problem(x, dt, a, b, c, d, dtBias, dtSoftplus, dtMin, dtMax, length: 1);
        var state = ssmState.ToDoubleArray();
        var output = new double[p.X.Length];
        for (int bi = 0; bi < batch; bi++)
            for (int h = 0; h < heads; h++)
            {
                var s = new Span<double>(state, (bi * heads + h) * headDim * n, headDim * n);
                p.Step(bi, 0, h, s, output);
            }
        Write(y, output);
        Write(ssmState, state);
    }

    /// <summary>The inputs as double arrays, with the indexing of the (b, l, h, p) / (b, l, g, n) layout.</summary>
    private sealed class Problem
    {
        public readonly int Batch, L, H, P, G, N;
        public readonly bool Softplus;
        public readonly double DtMin, DtMax;
        public readonly double[] X, DtRaw, A, B, C;
        public readonly double[]? SkipD, DtBias;

        public Problem(in SsdScanArgs a)
            : this(a.X, a.Dt, a.A, a.B, a.C, a.D, a.DtBias, a.DtSoftplus, a.DtMin, a.DtMax, a.Length) { }

        /// <summary>x [batch, length, H, P] and B, C [batch, length, G, N] (the length axis may be absent when it is 1).</summary>
        public Problem(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias,
            bool softplus, float dtMin, float dtMax, int length)
        {
            (Batch, L, H, P) = (x.Shape[0], length, x.Shape[x.Rank - 2], x.Shape[x.Rank - 1]);
            (G, N) = (b.Shape[b.Rank - 2], b.Shape[b.Rank - 1]);
            (Softplus, DtMin, DtMax) = (softplus, dtMin, dtMax);
            X = x.ToDoubleArray();
            DtRaw = dt.ToDoubleArray();
            A = a.ToDoubleArray();
            B = b.ToDoubleArray();
            C = c.ToDoubleArray();
            SkipD = d?.ToDoubleArray();
            DtBias = dtBias?.ToDoubleArray();
        }

        public int XIndex(int b, int t, int h, int i) => ((b * L + t) * H + h) * P + i;
        public int DtIndex(int b, int t, int h) => (b * L + t) * H + h;
        /// <summary>Index of B/C's [b, t, group of h, n].</summary>
        public int BcIndex(int b, int t, int h, int n) => ((b * L + t) * G + h / (H / G)) * N + n;
        public double Skip(int h) => SkipD?[h] ?? 0;
        private double Raw(int b, int t, int h) => DtRaw[DtIndex(b, t, h)] + (DtBias?[h] ?? 0);
        private double Unclamped(int b, int t, int h) => Softplus ? SelectiveScanReference.Softplus(Raw(b, t, h)) : Raw(b, t, h);
        public double Dt(int b, int t, int h) => Math.Clamp(Unclamped(b, t, h), DtMin, DtMax);

        /// <summary>∂dt_t/∂(dt_t + dtBias): 0 where the clamp holds it, as torch.clamp's gradient; σ for softplus.</summary>
        public double DtRawGrad(int b, int t, int h)
        {
            double v = Unclamped(b, t, h);
            if (v < DtMin || v > DtMax) return 0;
            return Softplus ? SelectiveScanReference.SoftplusGrad(Raw(b, t, h)) : 1;
        }

        /// <summary>S ← exp(dt·A)·S + dt·x_t ⊗ B_t, then y_t = S·C_t + D·x_t (when <paramref name="y"/> is given), for head h of stream b.</summary>
        public void Step(int b, int t, int h, Span<double> s, double[]? y)
        {
            int xi = XIndex(b, t, h, 0), bc = BcIndex(b, t, h, 0);
            double dt = Dt(b, t, h), a = Math.Exp(dt * A[h]);
            for (int i = 0; i < P; i++)
            {
                double xv = X[xi + i], yi = Skip(h) * xv;
                for (int n = 0; n < N; n++)
                {
                    ref double sv = ref s[i * N + n];
                    sv = a * sv + dt * xv * B[bc + n];
                    yi += sv * C[bc + n];
                }
                if (y is not null) y[xi + i] = yi;
            }
        }
    }

    private static void Write(Tensor t, double[] values)
    {
        using var source = Tensor.From(values, t.Shape.ToArray());
        t.CopyFrom(source);
    }
}
