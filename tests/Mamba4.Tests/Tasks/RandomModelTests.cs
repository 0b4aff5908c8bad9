using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;

namespace Mamba4.Tests;

/// <summary>`mamba4 random-model`: the real shapes' configurations give the published models' parameter counts (counted
/// here from the Mamba block's formula), and unknown or not-yet-supported shapes are one-line errors.</summary>
public class RandomModelTests
{
    [Theory]
    [InlineData("mamba-130m", 768, 24, 50280, true)]
    [InlineData("mamba-1.4b", 2048, 48, 50280, true)]
    [InlineData("mamba-2.8b", 2560, 64, 50280, true)]
    [InlineData("falcon-mamba-7b", 4096, 64, 65024, false)]
    public void ShapesHaveThePublishedSizes(string shape, int d, int layers, int vocab, bool tied)
    {
        var config = MambaConfig.FromJson(RandomModel.Shapes[shape].ToJsonString(), shape);
        long e = 2L * d, n = 16, r = shape == "falcon-mamba-7b" ? 256 : (d + 15) / 16;
        // in_proj, conv1d weight and bias, x_proj, dt_proj weight and bias, A_log, D, out_proj, the block's norm
        long block = d * 2 * e + e * 4 + e + e * (r + 2 * n) + r * e + e + e * n + e + e * d + d;
        long expected = layers * block + vocab * (long)d * (tied ? 1 : 2) + d;
        Assert.Equal(expected, MambaLM.Shapes(config).Elements);
    }

    [Fact]
    public void UnknownAndMamba2ShapesAreRefused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-random-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<ArgumentException>(() => RandomModel.Write("mamba-9b", dir));
        Assert.Contains("mamba-130m, mamba-1.4b, mamba-2.8b, falcon-mamba-7b", e.Message);
        Assert.Contains("Mamba-2", Assert.Throws<NotSupportedException>(() => RandomModel.Write("mamba2-2.7b", dir)).Message);
        Assert.False(Directory.Exists(dir));
    }
}
