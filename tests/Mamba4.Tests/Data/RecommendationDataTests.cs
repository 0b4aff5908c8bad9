using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Readers (every format, malformed input), k-core filter, remapping, chronological order, leave-one-out,
/// truncation, batches, the synthetic generator, and the real ML-100K / Amazon Beauty files.</summary>
public sealed class RecommendationDataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-recdata-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static string Data(params string[] parts) => Path.Combine([Fixtures.SharedDir, "data", .. parts]);

    private static (string User, string Item, double Time)[] Rows(InteractionLog log) =>
        Enumerable.Range(0, log.Count).Select(i => (log.UserTokens[log.Users[i]], log.ItemTokens[log.Items[i]], log.Timestamps[i])).ToArray();

    // ---------------------------------------------------------------- ml

    [Fact]
    public void MlReadsRatingsDatInTheMovieLens1MFormat()
    {
        var path = Write("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n\n2::1357::5::978298709\r\n");
        var log = InteractionReader.Read(path, RecFormat.Ml);
        Assert.Equal([("1", "1193", 978300760.0), ("1", "661", 978302109.0), ("2", "1357", 978298709.0)], Rows(log));
        Assert.Equal([1, 2, 4], log.Lines);
        Assert.True(log.HasTimestamps);
        Assert.Equal(0, log.BadLines);
    }

    [Fact]
    public void MlReadsUDataTabSeparated()
    {
        var path = Write("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
        var log = InteractionReader.Read(path, RecFormat.Ml);
        Assert.Equal([("196", "242", 881250949.0), ("186", "302", 891717742.0)], Rows(log));
    }

    [Theory]
    [InlineData("1::1193::5::978300760\n1::661::3\n", 2, "expected 4 fields UserID::MovieID::Rating::Timestamp")]
    [InlineData("1::1193::5::978300760\n1::661::3::9783x\n", 2, "expected a numeric unix timestamp in field 4")]
    [InlineData("1::1193::five::978300760\n", 1, "expected a numeric rating")]
    [InlineData("196\t242\t3\t881250949\n\n\n186\t302\t3\n", 4, "expected 4 fields user<TAB>item<TAB>rating<TAB>timestamp")]
    [InlineData("196 242 3 881250949\n", 1, "expected MovieLens ratings.dat")]
    [InlineData("::1193::5::978300760\n", 1, "found an empty one")]
    public void MlMalformedLinesNameFileLineAndWhatWasExpected(string content, int line, string expected)
    {
        var path = Write("ratings.dat", content);
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Ml));
        Assert.Equal(path, ex.File);
        Assert.Equal(line, ex.Line);
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith($"{path}:{line}: ", ex.Message);
    }

    [Fact]
    public void SkipBadLinesCountsAndReportsThem()
    {
        var path = Write("ratings.dat", "1::10::5::100\n1::11::5\n1::12::5::101\nbroken::line\n2::10::4::102\n1::13::x::103\n");
        var log = InteractionReader.Read(path, RecFormat.Ml, new RecReadOptions { SkipBadLines = true, MaxReportedBadLines = 2 });
        Assert.Equal(3, log.Count);
        Assert.Equal(3, log.BadLines);
        Assert.Equal(2, log.BadLineMessages.Count);          // only the first two keep their message
        Assert.StartsWith($"{path}:2: expected 4 fields", log.BadLineMessages[0]);
        Assert.StartsWith($"{path}:4: expected 4 fields", log.BadLineMessages[1]);
        // A first line in neither layout is skipped too; the layout comes from the first line that has one.
        var junk = Write("junk.dat", "garbage\n1::10::5::100\n");
        var j = InteractionReader.Read(junk, RecFormat.Ml, new RecReadOptions { SkipBadLines = true });
        Assert.Equal((1, 1), (j.Count, j.BadLines));
        Assert.StartsWith($"{junk}:1: expected MovieLens ratings.dat", j.BadLineMessages[0]);
    }

    // ---------------------------------------------------------------- atomic

    [Fact]
    public void AtomicReadsTypedHeaderInAnyColumnOrder()
    {
        var path = Write("ml.inter", "rating:float\titem_id:token\tuser_id:token\ttimestamp:float\n3\tA\tu1\t10\n4\tB\tu1\t5.5\n");
        var log = InteractionReader.Read(path, RecFormat.Atomic);
        Assert.Equal([("u1", "A", 10.0), ("u1", "B", 5.5)], Rows(log));
        Assert.True(log.HasTimestamps);
    }

    [Fact]
    public void AtomicWithoutTimestampUsesFileOrderAndNamedFieldsWork()
    {
        var path = Write("x.inter", "uid:token\tiid:token\ttags:token_seq\nu1\tA\tx y\nu2\tB\t\nu1\tC\tz\n");
        var log = InteractionReader.Read(path, RecFormat.Atomic, new RecReadOptions { UserField = "uid", ItemField = "iid" });
        Assert.False(log.HasTimestamps);
        Assert.Equal([("u1", "A", 0.0), ("u2", "B", 1.0), ("u1", "C", 2.0)], Rows(log));
    }

    [Theory]
    [InlineData("user_id:token\titem:token\n", 1, "expected a item column \"item_id:token\"")]
    [InlineData("user_id:token\titem_id:token\ttimestamp\n", 1, "expected header field 3 as name:type")]
    [InlineData("user_id:token\titem_id:token\ttimestamp:token\n", 1, "expected the time column \"timestamp\" to have type float")]
    [InlineData("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\nu\ti\n", 3, "expected 3 tab-separated fields")]
    [InlineData("user_id:token\titem_id:token\ttimestamp:float\nu\ti\tnoon\n", 2, "expected a number in timestamp:float")]
    [InlineData("user_id:token\titem_id:token\n\t5\n", 2, "expected non-empty user_id and item_id")]
    [InlineData("", 0, "expected a header line")]
    public void AtomicMalformedInput(string content, int line, string expected)
    {
        var path = Write("bad.inter", content);
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Atomic));
        Assert.Equal(line, ex.Line);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void AtomicHeaderErrorsAreFatalEvenWhenSkippingBadLines()
    {
        var path = Write("bad.inter", "user_id:token\tproduct:token\nu\ti\n");
        Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Atomic, new RecReadOptions { SkipBadLines = true }));
    }

    // ---------------------------------------------------------------- csv

    [Fact]
    public void CsvChoosesColumnsByNameAndHandlesQuotes()
    {
        var path = Write("ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n\"1\",\"1029\",3.0,1260759179\n2,\"a, \"\"b\"\"\",4,1260759100\n");
        var log = InteractionReader.Read(path, RecFormat.Csv);
        Assert.Equal([("1", "31", 1260759144.0), ("1", "1029", 1260759179.0), ("2", "a, \"b\"", 1260759100.0)], Rows(log));
    }

    [Fact]
    public void CsvExplicitColumnsIsoDatesAndOtherDelimiters()
    {
        var path = Write("events.csv", "when;who;what\n2020-01-01T00:00:10Z;alice;x\n2020-01-01T00:00:00Z;alice;y\n");
        var log = InteractionReader.Read(path, RecFormat.Csv, new RecReadOptions { UserField = "who", ItemField = "what", TimeField = "when", CsvDelimiter = ';' });
        Assert.Equal([("alice", "x", 1577836810.0), ("alice", "y", 1577836800.0)], Rows(log));
    }

    [Fact]
    public void CsvWithoutTimeColumnWhenAskedUsesFileOrder()
    {
        var path = Write("p.csv", "user,item\nu,a\nu,b\n");
        var log = InteractionReader.Read(path, RecFormat.Csv, new RecReadOptions { TimeField = "" });
        Assert.False(log.HasTimestamps);
        Assert.Equal([("u", "a", 0.0), ("u", "b", 1.0)], Rows(log));
    }

    [Theory]
    [InlineData("user,item,rating\n1,2,3\n", 1, "expected a timestamp column")]
    [InlineData("uid,product,timestamp\n1,2,3\n", 1, "expected a item column")]
    [InlineData("user,item,timestamp\n1,2,3\n1,2\n", 3, "expected 3 fields as the header")]
    [InlineData("user,item,timestamp\n1,\"2,3\n", 2, "unterminated quoted field starting at column 3")]
    [InlineData("user,item,timestamp\n1,2,yesterday\n", 2, "expected a timestamp in column timestamp")]
    [InlineData("user,item,timestamp\n1,\"2\"x,5\n", 2, "unexpected character 'x' after the closing quote at column 6")]
    public void CsvMalformedInput(string content, int line, string expected)
    {
        var path = Write("bad.csv", content);
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Csv));
        Assert.Equal(line, ex.Line);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void CsvNamedColumnMissingIsAnError()
    {
        var path = Write("a.csv", "user,item,timestamp\n1,2,3\n");
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Csv, new RecReadOptions { ItemField = "sku" }));
        Assert.Contains("\"sku\"", ex.Message);
    }

    // ---------------------------------------------------------------- seq and pairs

    [Fact]
    public void SeqReadsOneLinePerUserInOrder()
    {
        var path = Write("Beauty.txt", "1 10 11 12\n2\t11 13\n\n1 14\n");
        var log = InteractionReader.Read(path, RecFormat.Seq);
        Assert.False(log.HasTimestamps);
        Assert.Equal([("1", "10", 0.0), ("1", "11", 1.0), ("1", "12", 2.0), ("2", "11", 3.0), ("2", "13", 4.0), ("1", "14", 5.0)], Rows(log));
        Assert.Equal([1, 1, 1, 2, 2, 4], log.Lines);
    }

    [Fact]
    public void SeqUserWithoutItemsIsMalformed()
    {
        var path = Write("s.txt", "1 10 11\n7\n");
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(path, RecFormat.Seq));
        Assert.Equal(2, ex.Line);
        Assert.Contains("expected a user id followed by at least one item id", ex.Message);
        var log = InteractionReader.Read(path, RecFormat.Seq, new RecReadOptions { SkipBadLines = true });
        Assert.Equal((2, 1), (log.Count, log.BadLines));
    }

    [Fact]
    public void PairsReadsUserItemLines()
    {
        var path = Write("p.txt", "1 5\n1 6\n2 5\n");
        var log = InteractionReader.Read(path, RecFormat.Pairs);
        Assert.Equal([("1", "5", 0.0), ("1", "6", 1.0), ("2", "5", 2.0)], Rows(log));
        var bad = Write("q.txt", "1 5\n1 6 7\n");
        var ex = Assert.Throws<RecDataFormatException>(() => InteractionReader.Read(bad, RecFormat.Pairs));
        Assert.Equal(2, ex.Line);
        Assert.Contains("expected exactly two fields \"user item\", found 3", ex.Message);
    }

    [Fact]
    public void FormatNamesParseAndGuess()
    {
        Assert.Equal(RecFormat.Ml, RecFormats.Parse("ML"));
        Assert.Equal(RecFormat.Pairs, RecFormats.Parse("pairs"));
        Assert.Contains("expected one of ml, atomic, csv, seq, pairs", Assert.Throws<ArgumentException>(() => RecFormats.Parse("parquet")).Message);
        Assert.Equal(RecFormat.Atomic, RecFormats.Guess("/x/ml-1m.inter"));
        Assert.Equal(RecFormat.Ml, RecFormats.Guess("u.data"));
        Assert.Null(RecFormats.Guess("Beauty.txt"));
        Assert.Throws<FileNotFoundException>(() => InteractionReader.Read(Path.Combine(_dir, "nope.dat"), RecFormat.Ml));
    }

    // ---------------------------------------------------------------- filter, remap, order

    [Fact]
    public void KCoreIteratesToAFixedPointAsRecBoleDoes()
    {
        // k = 2. Users A..D, items x, y, z:  A: x y   B: x z   C: y   D: x y
        // Round 1 bans C (1 interaction) and z (1) together; then B has 1 left → round 2 bans B; then A, D, x, y all have 2.
        int[] users = [0, 0, 1, 1, 2, 3, 3];
        int[] items = [0, 1, 0, 2, 1, 0, 1];
        var keep = KCoreFilter.Apply(users, items, 2, 2, out int rounds);
        Assert.Equal([true, true, false, false, false, true, true], keep);
        Assert.Equal(2, rounds);
        // Already a 2-core: nothing removed, no rounds.
        Assert.All(KCoreFilter.Apply([0, 0, 1, 1], [0, 1, 0, 1], 2, 2, out rounds), Assert.True);
        Assert.Equal(0, rounds);
        // Different thresholds for users and items; duplicates count.
        keep = KCoreFilter.Apply([0, 0, 0, 1], [0, 0, 1, 0], 3, 1, out _);
        Assert.Equal([true, true, true, false], keep);
    }

    [Fact]
    public void KCoreCascadeCanEmptyTheDataAndBuildSaysSo()
    {
        var log = InteractionReader.Read(new StringReader("a 1\na 2\nb 1\n"), "tiny", RecFormat.Pairs);
        var ex = Assert.Throws<InvalidDataException>(() => SequenceDataset.Build(log, 2, 2));
        Assert.Contains("no interactions left", ex.Message);
    }

    [Fact]
    public void RemapIsFirstAppearanceWithPaddingZeroAndSortIsStableOnEqualTimestamps()
    {
        // u1's rows at times 5, 3, 3, 9 (file order a, b, c, d): sorted b, c (tie kept in file order), a, d.
        var log = InteractionReader.Read(new StringReader(
            "user_id:token\titem_id:token\ttimestamp:float\nu2\tc\t1\nu1\ta\t5\nu1\tb\t3\nu1\tc\t3\nu1\td\t9\nu2\ta\t0\n"), "t.inter", RecFormat.Atomic);
        var data = SequenceDataset.Build(log, 1, 1);
        Assert.Equal(["u2", "u1"], data.UserTokens);
        Assert.Equal(["[PAD]", "c", "a", "b", "d"], data.ItemTokens);
        Assert.Equal(5, data.NItems);
        Assert.Equal([2, 1], data.Sequences[0]);            // u2: a(0) then c(1)
        Assert.Equal([3, 1, 2, 4], data.Sequences[1]);      // u1: b(3), c(3), a(5), d(9)
        Assert.Equal(1, data.UserId("u1"));
        Assert.Equal(4, data.ItemId("d"));
        Assert.Null(data.ItemId("[PAD]"));
        // The tie flipped in the file flips in the sequence: the order is the file's, not an accident.
        var flipped = InteractionReader.Read(new StringReader(
            "user_id:token\titem_id:token\ttimestamp:float\nu1\tc\t3\nu1\tb\t3\n"), "f.inter", RecFormat.Atomic);
        var f = SequenceDataset.Build(flipped, 1, 1);
        Assert.Equal(["c", "b"], f.Sequences[0].Select(i => f.ItemTokens[i]));
    }

    [Fact]
    public void StatisticsCountUsersItemsInteractionsDensityAndLength()
    {
        var data = SequenceDataset.FromSequences([[1, 2, 3], [2, 3, 4, 5, 6], [1, 1]], 8);
        var s = data.Statistics;
        Assert.Equal((3, 7, 10L, 2, 5, 3.0), (s.Users, s.Items, s.Interactions, s.MinLength, s.MaxLength, s.MedianLength));
        Assert.Equal(10.0 / 21, s.Density, 12);
        Assert.Equal(10.0 / 3, s.AverageLength, 12);
        Assert.Contains("users 3, items 7, interactions 10", s.ToString());
    }

    [Fact]
    public void FromSequencesKeepsGivenTokensAndRefusesMismatchedCounts()
    {
        var data = SequenceDataset.FromSequences([[1, 2], [2, 1]], 3, "s", ["u1", "u2"], ["[PAD]", "a", "b"]);
        Assert.Equal(["u1", "u2"], data.UserTokens);
        Assert.Equal(1, data.UserId("u2"));
        Assert.Equal(2, data.ItemId("b"));
        Assert.Contains("1 user tokens for 2 sequences", Assert.Throws<ArgumentException>(() => SequenceDataset.FromSequences([[1], [2]], 3, "s", ["u1"])).Message);
        Assert.Contains("2 item tokens for 3 items", Assert.Throws<ArgumentException>(() => SequenceDataset.FromSequences([[1]], 3, "s", null, ["[PAD]", "a"])).Message);
    }

    // ---------------------------------------------------------------- split, truncation, batches

    [Fact]
    public void LeaveOneOutLastIsTestSecondLastValidationRestTraining()
    {
        // Users with 6, 3, 2 and 1 items.
        var data = SequenceDataset.FromSequences([[1, 2, 3, 4, 5, 6], [7, 8, 9], [3, 4], [5]], 10);
        var split = LeaveOneOutSplit.Create(data);
        Assert.Equal([new(0, 1), new(0, 2), new(0, 3), new SeqSample(1, 1), new(2, 1)], split.Train);
        Assert.Equal([new SeqSample(0, 4)], split.Valid);                 // as RecBole: ≥ 1 training sample is kept,
        Assert.Equal([new SeqSample(0, 5), new(1, 2)], split.Test);       // so 2 samples → train + test, 1 → train only
        Assert.Equal([4, 2, 2, 0], Enumerable.Range(0, 4).Select(split.TrainLength));
        Assert.Equal([1, 2, 3, 4], split.History(new SeqSample(0, 4)).ToArray());
    }

    [Fact]
    public void SampleBatchesTruncateToTheMostRecentMaxLenAndPadRight()
    {
        var data = SequenceDataset.FromSequences([[1, 2, 3, 4, 5, 6], [7, 8, 9]], 10);
        using var batch = SequenceBatcher.FromSamples(data, [new(0, 5), new(1, 1), new(0, 2)], maxLen: 3);
        Assert.Equal(new Shape(3, 3), batch.ItemSeq.Shape);
        Assert.Equal(DType.I64, batch.ItemSeq.DType);
        Assert.Equal([3, 4, 5, 7, 0, 0, 1, 2, 0], batch.ItemSeq.ToInt64Array());   // user 0 before item 6: the last 3 of 1..5
        Assert.Equal([3, 1, 2], batch.ItemSeqLen.ToInt64Array());
        Assert.Equal([6, 8, 3], batch.PosItems!.ToInt64Array());
        Assert.Equal([0, 1, 0], batch.Users);
        using var fixedLen = SequenceBatcher.FromSamples(data, [new(1, 1)], maxLen: 4, padToMaxLen: true);
        Assert.Equal([7, 0, 0, 0], fixedLen.ItemSeq.ToInt64Array());
        Assert.Throws<ArgumentOutOfRangeException>(() => SequenceBatcher.FromSamples(data, [new(1, 3)], 3));
    }

    [Fact]
    public void WindowsCoverEveryTrainingTargetOnceWithIgnoredPadding()
    {
        var data = SequenceDataset.FromSequences([[1, 2, 3, 4, 5, 6, 7, 8, 9], [2, 4, 6, 8]], 10);
        var split = LeaveOneOutSplit.Create(data);
        // User 0 trains on items 1..7 (6 inputs, targets 2..7); max_len 4 cuts from the most recent: inputs [2, 6), then [0, 2).
        var windows = split.TrainWindows(4);
        Assert.Equal([new(0, 0, 2), new(0, 2, 4), new SeqWindow(1, 0, 1)], windows);
        var covered = windows.SelectMany(w => Enumerable.Range(w.Start + 1, w.Length).Select(e => new SeqSample(w.User, e)));
        Assert.Equal(split.Train.OrderBy(x => (x.User, x.End)), covered.OrderBy(x => (x.User, x.End)));
        using var batch = SequenceBatcher.FromWindows(data, windows, 4);
        Assert.Equal([1, 2, 0, 0, 3, 4, 5, 6, 2, 0, 0, 0], batch.ItemSeq.ToInt64Array());
        Assert.Equal([2, 3, -100, -100, 4, 5, 6, 7, 4, -100, -100, -100], batch.Targets!.ToInt64Array());
        Assert.Equal([2, 4, 1], batch.ItemSeqLen.ToInt64Array());
        Assert.Null(batch.PosItems);
    }

    [Fact]
    public void BatchIteratorsCoverAllSamplesAndShuffleReproducibly()
    {
        var data = SequenceDataset.FromSequences(Enumerable.Range(0, 7).Select(u => new[] { 1, 2, 3, 4, 5 }.Select(i => (i + u) % 9 + 1).ToArray()).ToArray(), 10);
        var split = LeaveOneOutSplit.Create(data);
        int[] Targets(Random? r) => SequenceBatcher.Samples(data, split.Train, 50, 4, r).SelectMany(b => { using (b) return b.PosItems!.ToInt64Array().Select(x => (int)x).ToArray(); }).ToArray();
        var inOrder = Targets(null);
        Assert.Equal(split.Train.Select(s => data.Sequences[s.User][s.End]), inOrder);
        var a = Targets(new Random(5));
        var b = Targets(new Random(5));
        Assert.Equal(a, b);
        Assert.NotEqual(inOrder, a);
        Assert.Equal(inOrder.Order(), a.Order());
        Assert.Equal(4, SequenceBatcher.Windows(data, split.TrainWindows(50), 50, 2).Count(x => { x.Dispose(); return true; }));
    }

    [Fact]
    public void AllPositionsObjectiveEqualsThePrefixObjectiveLossAndGradients()
    {
        // With every training part within max_len + 1, one causal forward per user sees exactly the prefixes RecBole
        // trains on: the mean cross-entropy and every parameter gradient agree.
        var rng = new Random(9);
        var seqs = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, rng.Next(4, 11)).Select(_ => rng.Next(1, 20)).ToArray()).ToArray();
        var data = SequenceDataset.FromSequences(seqs, 20);
        var split = LeaveOneOutSplit.Create(data);
        const int maxLen = 10;
        ISequentialRecommender[] models =
        [
            new SASRec(new SASRecConfig { NItems = 20, MaxSeqLength = maxLen, HiddenSize = 8, NHeads = 2, InnerSize = 16 }, seed: 1),
            new GRU4Rec(new GRU4RecConfig { NItems = 20, EmbeddingSize = 8, HiddenSize = 6 }, seed: 1),
        ];
        foreach (var model in models)
        {
            var module = (Nn.Module)model;
            module.Eval();
            float prefixLoss, allLoss;
            Dictionary<string, float[]> prefixGrads, allGrads;
            using (var scope = new TensorScope())
            {
                using var batch = SequenceBatcher.FromSamples(data, split.Train, maxLen);
                var loss = model.NextItem(batch.ItemSeq, batch.ItemSeqLen, batch.PosItems!);
                prefixLoss = loss.Item();
                loss.Backward();
                prefixGrads = module.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad!.ToFloatArray());
                module.ZeroGrad();
            }
            using (var scope = new TensorScope())
            {
                using var batch = SequenceBatcher.FromWindows(data, split.TrainWindows(maxLen), maxLen);
                var loss = model.AllPositions(batch.ItemSeq, batch.Targets!);
                allLoss = loss.Item();
                loss.Backward();
                allGrads = module.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad!.ToFloatArray());
                module.ZeroGrad();
            }
            Assert.Equal(prefixLoss, allLoss, 1e-5);
            foreach (var (name, g) in prefixGrads)
                ModelFixtureTests.AssertClose(g.Select(v => (double)v).ToArray(), allGrads[name], 1e-4, 1e-5, $"{model.GetType().Name} grad {name}");
            module.Dispose();
        }
    }

    // ---------------------------------------------------------------- synthetic

    [Fact]
    public void SyntheticDataIsSeededAndSurvivesTheDefaultPipeline()
    {
        var o = new SyntheticRecOptions { Users = 300, Items = 120, MinLength = 6, MaxLength = 20, Seed = 3 };
        var a = SyntheticRecData.Generate(o);
        var b = SyntheticRecData.Generate(o);
        Assert.Equal(a.Items, b.Items);
        Assert.Equal(a.Users, b.Users);
        Assert.NotEqual(a.Items, SyntheticRecData.Generate(o with { Seed = 4 }).Items);
        var data = SequenceDataset.Build(a);
        Assert.Equal(300, data.UserCount);
        Assert.InRange(data.Statistics.MinLength, 5, 20);
        Assert.InRange(data.Statistics.MaxLength, 6, 20);
        Assert.True(data.NItems > 60, $"{data.NItems} items survive the 5-core filter");
        // Markov structure: the most frequent successor of an item accounts for far more than a uniform share.
        var next = new Dictionary<int, Dictionary<int, int>>();
        foreach (var s in data.Sequences)
            for (int t = 0; t + 1 < s.Length; t++)
            {
                next.TryAdd(s[t], new Dictionary<int, int>());
                next[s[t]][s[t + 1]] = next[s[t]].GetValueOrDefault(s[t + 1]) + 1;
            }
        double topShare = next.Values.Sum(d => (double)d.Values.Max()) / next.Values.Sum(d => (double)d.Values.Sum());
        Assert.True(topShare > 0.2, $"top successor share {topShare:F3}");
    }

    // ---------------------------------------------------------------- real data

    [Fact]
    public void MovieLens100KFiveCoreStatisticsOrderAndSplit()
    {
        var log = InteractionReader.Read(Data("ml-100k", "u.data"), RecFormat.Ml);
        Assert.Equal((100_000, 943, 1682), (log.Count, log.UserTokens.Count, log.ItemTokens.Count));
        var data = SequenceDataset.Build(log);
        // Numbers from a short independent python3 script (plain lists and collections.Counter): RecBole-style
        // simultaneous 5-core rounds over u.data; then per-user rows sorted by (timestamp, file position).
        //   ml-100k 5core users 943 items 1349 inter 99287 density 0.07804925 avglen 105.288441, 1 round;
        //   lengths min 19, max 648; first-appearance ids: item "242" → 1, "302" → 2; 1350 ids with padding;
        //   user "196": id 0, 39 items, first "242", last three "1118", "94", "110";
        //   user "1": id 118, 271 items, first ten 168 172 165 156 196 166 187 14 250 127, last three "5", "74", "102"
        //   (ties broken the other way would give "256", "102", "74": every user has tied timestamps).
        var s = data.Statistics;
        Assert.Equal((943, 1349, 99_287L, 19, 648), (s.Users, s.Items, s.Interactions, s.MinLength, s.MaxLength));
        Assert.Equal(0.07804925, s.Density, 8);
        Assert.Equal(105.288441, s.AverageLength, 6);
        Assert.Equal(1, data.FilterRounds);
        Assert.Equal(1350, data.NItems);
        Assert.Equal((1, 2), (data.ItemId("242"), data.ItemId("302")));
        string[] Tokens(int user) => data.Sequences[user].Select(i => data.ItemTokens[i]).ToArray();
        Assert.Equal(0, data.UserId("196"));
        Assert.Equal(39, Tokens(0).Length);
        Assert.Equal(["242"], Tokens(0)[..1]);
        Assert.Equal(["1118", "94", "110"], Tokens(0)[^3..]);
        int u1 = data.UserId("1")!.Value;
        Assert.Equal(118, u1);
        Assert.Equal(271, Tokens(u1).Length);
        Assert.Equal(["168", "172", "165", "156", "196", "166", "187", "14", "250", "127"], Tokens(u1)[..10]);
        Assert.Equal(["5", "74", "102"], Tokens(u1)[^3..]);
        var split = LeaveOneOutSplit.Create(data);
        // Every user has ≥ 5 items: n − 3 training samples each, one validation and one test sample.
        Assert.Equal((99_287 - 3 * 943, 943, 943), (split.Train.Length, split.Valid.Length, split.Test.Length));
        Assert.Equal("102", data.ItemTokens[data.Sequences[u1][split.Test.Single(t => t.User == u1).End]]);
        Assert.Equal("74", data.ItemTokens[data.Sequences[u1][split.Valid.Single(t => t.User == u1).End]]);
        // max_len 200: user 1's test input is its 200 items before the last.
        using var batch = SequenceBatcher.FromSamples(data, [split.Test.Single(t => t.User == u1)], 200);
        Assert.Equal(200, batch.ItemSeqLen.ToInt64Array()[0]);
        Assert.Equal(data.Sequences[u1][70..270].Select(i => (long)i), batch.ItemSeq.ToInt64Array());
    }

    [Fact]
    public void AmazonBeautyIsAlreadyAFiveCore()
    {
        var log = InteractionReader.Read(Data("amazon-beauty", "Beauty.txt"), RecFormat.Seq);
        var data = SequenceDataset.Build(log);
        // From the same python3 script over Beauty.txt (one line per user): 22,363 users, 12,101 items,
        // 198,502 interactions before and after 5-core filtering (0 rounds), density 0.00073352, average 8.876358,
        // longest sequence 204; user "1" has 5 items, the last two "4" and "5". (SOURCES.md states the same counts.)
        var s = data.Statistics;
        Assert.Equal((22_363, 12_101, 198_502L, 204), (s.Users, s.Items, s.Interactions, s.MaxLength));
        Assert.Equal(0, data.FilterRounds);
        Assert.Equal(0.00073352, s.Density, 8);
        Assert.Equal(8.876358, s.AverageLength, 6);
        var u = data.UserId("1")!.Value;
        Assert.Equal(["4", "5"], data.Sequences[u][^2..].Select(i => data.ItemTokens[i]));
        var split = LeaveOneOutSplit.Create(data);
        Assert.Equal((198_502 - 3 * 22_363, 22_363, 22_363), (split.Train.Length, split.Valid.Length, split.Test.Length));
    }
}
