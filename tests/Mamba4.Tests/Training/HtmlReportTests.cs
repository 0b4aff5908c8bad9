using Mamba4.Training;

namespace Mamba4.Tests;

/// <summary>The inline SVG charts: positions on log axes (worked out by hand for the 640×320 plot), notes, escaping.</summary>
public class HtmlReportTests
{
    [Fact]
    public void LogLogChartPlacesPowersOfTenEvenlyAndPrintsNotes()
    {
        // plot area: x from 60 to 490 (640 − 60 − 150 wide), y from 280 (320 − 40) up to 30
        // y = x/10 on decades 10, 100, 1000 → evenly spaced on both log axes; x = 0 cannot be shown on a log axis
        var html = new HtmlReport("t")
            .Chart("c", "L", "ms", [("a<b", new List<(double, double)> { (0, 5), (10, 1), (100, 10), (1000, 100) })], logY: true, logX: true, notes: ["slope 1.00"])
            .ToHtml();
        Assert.Contains("points=\"60.0,280.0 275.0,155.0 490.0,30.0\"", html);
        Assert.Contains(">slope 1.00</text>", html);
        Assert.Contains(">a&lt;b</text>", html);
        Assert.Equal(3, html.Split("<circle").Length - 1);
        // axis labels at the quarter ticks of a log axis: 10, 31.6, 100, 316, 1000
        foreach (var label in new[] { ">10<", ">31.6<", ">100<", ">316<", ">1000<" }) Assert.Contains(label, html);
    }

    [Fact]
    public void LinearChartIsUnchangedByTheLogOptions()
    {
        var html = new HtmlReport("t").Chart("c", "x", "y", [("s", new List<(double, double)> { (0, 0), (2, 1), (4, 2) })]).ToHtml();
        Assert.Contains("points=\"60.0,280.0 275.0,155.0 490.0,30.0\"", html);
    }
}
