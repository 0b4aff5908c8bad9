using System.Globalization;
using System.Net;
using System.Text;

namespace Mamba4.Training;

/// <summary>A self-contained HTML page (inline SVG line charts, no external files) summarising a run.</summary>
public sealed class HtmlReport(string title)
{
    private readonly StringBuilder _body = new();
    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

    public HtmlReport Paragraph(string text)
    {
        _body.Append("<p>").Append(WebUtility.HtmlEncode(text)).Append("</p>\n");
        return this;
    }

    public HtmlReport Table(string[] header, IEnumerable<string[]> rows)
    {
        _body.Append("<table><tr>");
        foreach (var h in header) _body.Append("<th>").Append(WebUtility.HtmlEncode(h)).Append("</th>");
        _body.Append("</tr>\n");
        foreach (var r in rows)
        {
            _body.Append("<tr>");
            foreach (var c in r) _body.Append("<td>").Append(WebUtility.HtmlEncode(c)).Append("</td>");
            _body.Append("</tr>\n");
        }
        _body.Append("</table>\n");
        return this;
    }

    /// <summary>
    /// A line chart of several series of (x, y) points; either axis may be logarithmic (points ≤ 0 are then left out).
    /// <paramref name="notes"/> are printed under the plot, one line each (e.g. fitted slopes); series of at most
    /// 32 points also get a dot per point.
    /// </summary>
    public HtmlReport Chart(string chartTitle, string xLabel, string yLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series,
        bool logY = false, bool logX = false, IReadOnlyList<string>? notes = null)
    {
        const int w = 640, h = 320, left = 60, right = 150, top = 30, bottom = 40;
        bool Shown((double X, double Y) p) => double.IsFinite(p.Y) && (!logY || p.Y > 0) && (!logX || p.X > 0);
        var pts = series.SelectMany(s => s.Points).Where(Shown).ToList();
        int notesHeight = 16 * (notes?.Count ?? 0);
        _body.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h + notesHeight}\" role=\"img\"><title>{WebUtility.HtmlEncode(chartTitle)}</title>\n");
        _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{w / 2}\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">{WebUtility.HtmlEncode(chartTitle)}</text>\n");
        if (pts.Count > 0)
        {
            double Y(double v) => logY ? Math.Log10(v) : v;
            double X(double v) => logX ? Math.Log10(v) : v;
            double x0 = pts.Min(p => X(p.X)), x1 = pts.Max(p => X(p.X)), y0 = pts.Min(p => Y(p.Y)), y1 = pts.Max(p => Y(p.Y));
            if (x1 == x0) x1 = x0 + 1;
            if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
            double Px(double x) => left + (X(x) - x0) / (x1 - x0) * (w - left - right);
            double Py(double y) => h - bottom - (Y(y) - y0) / (y1 - y0) * (h - top - bottom);
            _body.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left}\" y=\"{top}\" width=\"{w - left - right}\" height=\"{h - top - bottom}\" fill=\"none\" stroke=\"#999\"/>\n");
            for (int i = 0; i <= 4; i++)
            {
                double yv = y0 + (y1 - y0) * i / 4, py = h - bottom - (h - top - bottom) * i / 4.0;
                string label = logY ? LogTick(Math.Pow(10, yv)) : yv.ToString("G3", CultureInfo.InvariantCulture);
                _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 4}\" y=\"{py + 4:F1}\" text-anchor=\"end\" font-size=\"11\">{label}</text>\n");
                double xv = x0 + (x1 - x0) * i / 4, px = left + (w - left - right) * i / 4.0;
                string xl = logX ? LogTick(Math.Pow(10, xv)) : xv.ToString("G4", CultureInfo.InvariantCulture);
                _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{px:F1}\" y=\"{h - bottom + 14}\" text-anchor=\"middle\" font-size=\"11\">{xl}</text>\n");
            }
            _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{(left + w - right) / 2}\" y=\"{h - 6}\" text-anchor=\"middle\" font-size=\"12\">{WebUtility.HtmlEncode(xLabel)}</text>\n");
            _body.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{(top + h - bottom) / 2}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 {(top + h - bottom) / 2})\">{WebUtility.HtmlEncode(yLabel)}</text>\n");
            for (int s = 0; s < series.Count; s++)
            {
                var color = Colors[s % Colors.Length];
                var shown = series[s].Points.Where(Shown).ToList();
                var line = string.Join(" ", shown.Select(p => $"{Px(p.X).ToString("F1", CultureInfo.InvariantCulture)},{Py(p.Y).ToString("F1", CultureInfo.InvariantCulture)}"));
                _body.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{line}\"/>\n");
                if (shown.Count <= 32)
                    foreach (var p in shown)
                        _body.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{Px(p.X):F1}\" cy=\"{Py(p.Y):F1}\" r=\"2.5\" fill=\"{color}\"/>\n");
                _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{w - right + 8}\" y=\"{top + 14 + 16 * s}\" font-size=\"12\" fill=\"{color}\">{WebUtility.HtmlEncode(series[s].Name)}</text>\n");
            }
        }
        else _body.Append("<text x=\"20\" y=\"60\">no data</text>\n");
        for (int i = 0; i < (notes?.Count ?? 0); i++)
            _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"{h + 12 + 16 * i}\" font-size=\"12\">{WebUtility.HtmlEncode(notes![i])}</text>\n");
        _body.Append("</svg>\n");
        return this;
    }

    /// <summary>A log-axis label: three significant digits, whole numbers up to 10⁷ written out (16384, not 1.64E+04).</summary>
    private static string LogTick(double v)
    {
        if (v is < 1e-3 or >= 1e7) return v.ToString("G3", CultureInfo.InvariantCulture);
        int digits = Math.Max(0, 2 - (int)Math.Floor(Math.Log10(v)));
        return Math.Round(v, digits).ToString(CultureInfo.InvariantCulture);
    }

    public string ToHtml() =>
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + WebUtility.HtmlEncode(title) + "</title>\n" +
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>\n" +
        "</head><body>\n<h1>" + WebUtility.HtmlEncode(title) + "</h1>\n" + _body + "</body></html>\n";

    public void Save(string path) => IO.AtomicFile.WriteAllText(path, ToHtml());
}
