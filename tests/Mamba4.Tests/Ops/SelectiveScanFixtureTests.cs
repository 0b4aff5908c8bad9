using Mamba4.IO;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The fused scan op in float32 against mamba_ssm's selective_scan_ref computed in float64
/// (fixtures: u, delta, z, y in [b, d, L]; B, C in [b, n, L] or [d, n]; our layout is channels-last).
/// </summary>
public class SelectiveScanFixtureTests
{
    /// <summary>[b, x, L] → [b, L, x].</summary>
    private static float[] ChannelsLast(double[] v, int b, int x, int l)
    {
        var r = new float[v.Length];
        for (int i = 0; i < b; i++)
            for (int c = 0; c < x; c++)
                for (int t = 0; t < l; t++) r[(i * l + t) * x + c] = (float)v[(i * x + c) * l + t];
        return r;
    }

    private static double[] ChannelsFirst(float[] v, int b, int x, int l)
    {
        var r = new double[v.Length];
        for (int i = 0; i < b; i++)
            for (int c = 0; c < x; c++)
                for (int t = 0; t < l; t++) r[(i * x + c) * l + t] = v[(i * l + t) * x + c];
        return r;
    }

    [Theory]
    [InlineData("selective-scan-selective.safetensors", true)]
    [InlineData("selective-scan-lti.safetensors", false)]
    public void ForwardLastStateAndAllEightGradientsMatchReference(string file, bool selective)
    {
        using var f = SafetensorsFile.Open(Fixtures.Path_(file));
        using var scope = new TensorScope();
        var uShape = f.Info("in.u").Shape;
        int b = uShape[0], d = uShape[1], l = uShape[2], n = f.Info("in.A").Shape[1];
        Tensor Seq(string name) => Tensor.From(ChannelsLast(f.Get(name).ToDoubleArray(), b, d, l), b, l, d);
        Tensor Bc(string name) => selective
            ? Tensor.From(ChannelsLast(f.Get(name).ToDoubleArray(), b, n, l), b, l, n)
            : f.Get(name, DType.F32);
        var u = Seq("in.u"); var delta = Seq("in.delta"); var z = Seq("in.z");
        var a = f.Get("in.A", DType.F32); var bm = Bc("in.B"); var cm = Bc("in.C");
        var dskip = f.Get("in.D", DType.F32); var bias = f.Get("in.delta_bias", DType.F32);
        var inputs = new[] { u, delta, a, bm, cm, dskip, z, bias };
        foreach (var t in inputs) t.RequiresGrad = true;

        var (y, last) = F.SelectiveScan(u, delta, a, bm, cm, dskip, z, bias, deltaSoftplus: true, returnLastState: true);
        ModelFixtureTests.AssertClose(f.Get("out.y").ToDoubleArray(), ChannelsFirst(y.ToFloatArray(), b, d, l).Select(v => (float)v).ToArray(), 1e-5, 1e-5, "out.y");
        ModelFixtureTests.AssertClose(f.Get("out.last_state").ToDoubleArray(), last!.ToFloatArray(), 1e-5, 1e-5, "out.last_state");

        var dy = Seq("dy");
        F.Sum(F.Mul(y, dy)).Backward();
        string[] names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"];
        for (int i = 0; i < names.Length; i++)
        {
            var expected = f.Get("grad." + names[i]).ToDoubleArray();
            var g = inputs[i].Grad!.ToFloatArray();
            bool sequence = names[i] is "u" or "delta" or "z" || (selective && names[i] is "B" or "C");
            int x = names[i] is "B" or "C" ? n : d;
            var actual = sequence ? ChannelsFirst(g, b, x, l).Select(v => (float)v).ToArray() : g;
            ModelFixtureTests.AssertClose(expected, actual, 1e-4, 1e-5, "grad." + names[i]);
        }
    }
}
