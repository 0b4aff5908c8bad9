using System.IO.Compression;
using System.Text;
using Mamba4.Data.Recommendation;
using Mamba4.Data.TimeSeries;
using Mamba4.IO;

namespace Mamba4.Tests;

/// <summary>
/// Gzip input for every reader (<see cref="DataFile"/>): a .gz reads as its plain twin, detected by its bytes; errors keep
/// file:line of the decompressed text; truncated, corrupt and mislabelled gzip are one-line errors; the bounds hold on the
/// decompressed stream; the real ML-1M and ETTm1 gzip files load.
/// </summary>
public sealed class DataFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-datafile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Plain(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static byte[] Gzip(byte[] data, CompressionLevel level = CompressionLevel.Fastest)
    {
        using var buffer = new MemoryStream();
        using (var gz = new GZipStream(buffer, level)) gz.Write(data);
        return buffer.ToArray();
    }

    private string Gz(string name, string content) => GzBytes(name, Gzip(Encoding.UTF8.GetBytes(content)));

    private string GzBytes(string name, byte[] bytes)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static (string, string, double, int)[] Rows(InteractionLog log) =>
        Enumerable.Range(0, log.Count).Select(i => (log.UserTokens[log.Users[i]], log.ItemTokens[log.Items[i]], log.Timestamps[i], log.Lines[i])).ToArray();

    private static string Data(params string[] parts) => Path.Combine([Fixtures.SharedDir, "data", .. parts]);

    [Theory]
    [InlineData("ml", "1::1193::5::978300760\n1::661::3::978302109\r\n\n2::1357::5::978298709")]
    [InlineData("atomic", "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t10\n\nu1\ti2\t11\nu2\ti1\t12\n")]
    [InlineData("csv", "\uFEFFuserId,movieId,rating,timestamp\n1,\"10\",4,100\r\n2,11,3,2024-01-01T00:00:00Z\n\n1,12,5,101\n")]
    [InlineData("seq", "1 5 6 7\n\n2 6 8\n3 9\n")]
    [InlineData("pairs", "1 5\n1 6\r2 7\n\n2 5\n")]
    public void EveryInteractionFormatReadsAGzipAsItsPlainTwin(string format, string content)
    {
        var f = RecFormats.Parse(format);
        var plain = InteractionReader.Read(Plain("data.txt", content), f);
        var gz = InteractionReader.Read(Gz("data.txt.gz", content), f);
        Assert.True(plain.Count >= 3);
        Assert.Equal(Rows(plain), Rows(gz));
        Assert.Equal(plain.HasTimestamps, gz.HasTimestamps);
    }

    [Fact]
    public void GzipIsDetectedByItsBytesNotItsName()
    {
        var path = Gz("ratings.dat", "1::10::5::100\n2::11::4::101\n");   // gzip data under a plain name
        Assert.Equal([("1", "10", 100.0, 1), ("2", "11", 101.0, 2)], Rows(InteractionReader.Read(path, RecFormat.Ml)));
        Assert.Equal(RecFormat.Ml, RecFormats.Guess("ratings.dat.gz"));
        Assert.Equal(RecFormat.Atomic, RecFormats.Guess("ml-1m.inter.gz"));
        Assert.Null(RecFormats.Guess("ml-1m.sequences.txt.gz"));
    }

    [Fact]
    public void TimeSeriesCsvAndTextReadAGzipAsTheirPlainTwins()
    {
        const string csv = "date,OT,HULL\n2016-07-01 00:00:00,30.5,2.0\n2016-07-01 01:00:00,NA,2.5\r\n2016-07-01 02:00:00,29.0,\"3.0\"\n";
        var options = new TimeSeriesCsvOptions { Fill = FillMethod.Linear };
        var plain = TimeSeriesCsv.Read(Plain("s.csv", csv), options);
        var gz = TimeSeriesCsv.Read(Gz("s.csv.gz", csv), options);
        Assert.Equal([30.5, 2.0, 29.75, 2.5, 29.0, 3.0], gz.Values);
        Assert.Equal(plain.Values, gz.Values);
        Assert.Equal(plain.Timestamps, gz.Timestamps);
        Assert.Equal(plain.Lines, gz.Lines);

        // lm train / lm eval text and tokenize --file: the same characters (a BOM kept byte for byte by ReadAllBytes).
        const string text = "\uFEFFFirst Citizen:\r\nBefore we proceed any further, hear me speak.\n\u00e9\u4e2d\n";
        Assert.Equal(File.ReadAllText(Plain("t.txt", text)), DataFile.ReadAllText(Gz("t.txt.gz", text)));
        Assert.Equal(File.ReadAllBytes(Plain("t.txt", text)), DataFile.ReadAllBytes(Gz("t.txt.gz", text)));
    }

    [Fact]
    public void LinesSplitAsStreamReaderDoesAcrossBufferBoundaries()
    {
        // \r, \n and \r\n line ends, one \r\n split over the 65,536-character read buffer, a last line without an end.
        var sb = new StringBuilder();
        var random = new Random(5);
        while (sb.Length < 200_000) sb.Append('x', random.Next(0, 300)).Append(random.Next(3) switch { 0 => "\n", 1 => "\r", _ => "\r\n" });
        sb.Insert(65_535, "\r\n").Append("tail");
        var content = sb.ToString();
        var expected = new List<string>();
        using (var r = new StringReader(content)) for (string? l; (l = r.ReadLine()) is not null;) expected.Add(l);
        foreach (var path in new[] { Plain("lines.txt", content), Gz("lines.txt.gz", content) })
        {
            var actual = new List<string>();
            using var reader = DataFile.OpenText(path);
            for (string? l; (l = reader.ReadLine()) is not null;) actual.Add(l);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void AnErrorInLineNOfAGzipNamesLineN()
    {
        // Line 5 of the decompressed text (after a blank line and a CRLF) is malformed.
        var path = Gz("u.data.gz", "196\t242\t3\t881250949\r\n186\t302\t3\t891717742\n\n22\t377\t1\t878887116\n244\t51\t2\n");
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Ml));
        Assert.Equal((path, 5), (ex.File, ex.Line));
        Assert.StartsWith($"{path}:5: expected 4 fields", ex.Message);

        var csv = Gz("s.csv.gz", "date,OT\n2016-07-01 00:00:00,1\n2016-07-01 01:00:00,x\n");
        var e2 = Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(csv));
        Assert.StartsWith($"{csv}:3: column 'OT'", e2.Message);
    }

    [Fact]
    public void TruncatedCorruptAndMislabelledGzipAreOneLineErrorsNamingTheFile()
    {
        var lines = string.Concat(Enumerable.Range(1, 50_000).Select(i => $"{i % 97} {i % 89}\n"));
        var whole = Gzip(Encoding.UTF8.GetBytes(lines));
        Assert.Equal(50_000, InteractionReader.Read(GzBytes("ok.gz", whole), RecFormat.Pairs).Count);

        foreach (int cut in new[] { whole.Length / 2, whole.Length - 4, whole.Length - 1, 12, 3 })
        {
            var path = GzBytes($"cut{cut}.gz", whole[..cut]);
            var ex = Assert.Throws<InvalidDataException>(() => InteractionReader.Read(path, RecFormat.Pairs));
            Assert.StartsWith($"{path}:", ex.Message);
            Assert.Contains("corrupt or truncated gzip data", ex.Message);
            Assert.DoesNotContain('\n', ex.Message);
        }
        // Cut in the middle: the line reached is named, well past the start and not past the end.
        var half = GzBytes("half.gz", whole[..(whole.Length / 2)]);
        var line = int.Parse(Assert.Throws<InvalidDataException>(() => InteractionReader.Read(half, RecFormat.Pairs)).Message.Split(':')[1]);
        Assert.InRange(line, 1_000, 50_000);

        var flipped = (byte[])whole.Clone();
        for (int i = whole.Length / 3; i < whole.Length / 3 + 16; i++) flipped[i] ^= 0x5a;
        var corrupt = GzBytes("corrupt.gz", flipped);   // read whole: garbage text could fail a reader's own check first
        Assert.Contains("corrupt or truncated gzip data", Assert.Throws<InvalidDataException>(() => DataFile.ReadAllText(corrupt)).Message);
        Assert.Contains("corrupt or truncated gzip data", Assert.Throws<InvalidDataException>(() => DataFile.ReadAllBytes(corrupt)).Message);

        var notGzip = Plain("pairs.txt.gz", "1 5\n1 6\n");
        var e = Assert.Throws<InvalidDataException>(() => InteractionReader.Read(notGzip, RecFormat.Pairs));
        Assert.Equal($"{notGzip}: named .gz but not gzip data (expected the gzip bytes 1f 8b at the start)", e.Message);
        Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(Plain("empty.csv.gz", "")));
    }

    [Fact]
    public void AGzipBombIsBoundedAsAPlainFileIs()
    {
        // 16 Mi + 1 characters in one line compress to a few kB; the reader stops at the line bound, naming file:line.
        var bomb = GzBytes("bomb.gz", Gzip(Encoding.UTF8.GetBytes("1 1\n" + new string('7', DataFile.MaxLineChars + 1)), CompressionLevel.SmallestSize));
        Assert.True(new FileInfo(bomb).Length < 100_000);
        var ex = Assert.Throws<InvalidDataException>(() => InteractionReader.Read(bomb, RecFormat.Pairs));
        Assert.StartsWith($"{bomb}:2: a line longer than {DataFile.MaxLineChars:N0} characters", ex.Message);
        // A whole-file read stops at its bound, in characters of the decompressed text.
        var text = Gz("big.txt.gz", new string('a', 5000));
        Assert.Equal(5000, DataFile.ReadAllText(text, maxChars: 5000).Length);
        Assert.StartsWith($"{text}: more than 4,999 characters", Assert.Throws<InvalidDataException>(() => DataFile.ReadAllText(text, maxChars: 4999)).Message);
        Assert.StartsWith($"{text}: more than 4,999 bytes", Assert.Throws<InvalidDataException>(() => DataFile.ReadAllBytes(text, maxBytes: 4999)).Message);
    }

    [Fact]
    public void TheRealMovieLens1MGzipLoadsWithThePublishedCounts()
    {
        // SOURCES.md: 1,000,209 lines, 6,040 users, 3,706 items, 20 to 2,314 interactions a user.
        var log = InteractionReader.Read(Data("ml-1m", "ml-1m.sequences.txt.gz"), RecFormat.Pairs);
        Assert.Equal(1_000_209, log.Count);
        Assert.Equal(6_040, log.UserTokens.Count);
        Assert.Equal(3_706, log.ItemTokens.Count);
        var perUser = log.Users.CountBy(u => u).Select(p => p.Value).ToArray();
        Assert.Equal((20, 2_314), (perUser.Min(), perUser.Max()));
        Assert.Equal(1_000_209, log.Lines[^1]);
    }

    [Fact]
    public void TheRealETTm1GzipLoads()
    {
        // SOURCES.md: 69,680 rows + header, 2016-07-01 00:00 to 2018-06-26 19:45, the columns of ETTh1.
        var t = TimeSeriesCsv.Read(Data("ett", "ETTm1.csv.gz"));
        Assert.Equal(["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"], t.Columns);
        Assert.Equal(69_680, t.Rows);
        Assert.Equal((new DateTime(2016, 7, 1, 0, 0, 0), new DateTime(2018, 6, 26, 19, 45, 0)), (t.Timestamps![0], t.Timestamps[^1]));
    }
}
