using System.Text;
using CsCheck;
using System.Text.Json;
using Mamba4.Text;

namespace Mamba4.Tests;

/// <summary>
/// The byte-level BPE tokenizer against the Hugging Face fixture (gpt-neox-20b), round-trip and streaming
/// properties on random Unicode, the added-token rules, Unicode normalization, malformed files, the character
/// tokenizer and the tokenize/detokenize commands.
/// </summary>
public sealed class TokenizerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mamba4-tokenizer-" + Guid.NewGuid().ToString("N"));

    public TokenizerTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    internal static string NeoxPath => Path.Combine(Fixtures.SharedDir, "data", "tokenizers", "gpt-neox-20b", "tokenizer.json");

    private static readonly Lazy<BpeTokenizer> LazyNeox = new(() => BpeTokenizer.FromFile(NeoxPath));
    internal static BpeTokenizer Neox => LazyNeox.Value;

    private sealed record Case(string Text, int[] Ids, string Decoded);

    private static readonly Lazy<Case[]> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path_("tokenizer", "gpt-neox-20b-cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new Case(c.GetProperty("text").GetString()!, c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray(),
                c.GetProperty("decoded").GetString()!))
            .ToArray();
    });

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Value.Length; i++) data.Add(i);
        return data;
    }

    // ------------------------------------------------------------------ the Hugging Face fixture

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void FixtureCaseEncodesToTheSameIds(int index)
    {
        var c = Cases.Value[index];
        Assert.Equal(c.Ids, Neox.Encode(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void FixtureCaseDecodesToTheSameText(int index)
    {
        var c = Cases.Value[index];
        Assert.Equal(c.Decoded, Neox.Decode(c.Ids));
        Assert.Equal(c.Decoded, Neox.Decode(c.Ids.Select(i => (long)i).ToArray()));
    }

    [Fact]
    public void NeoxFileLoadsAsHuggingFaceDoes()
    {
        var t = Neox;
        Assert.Equal(50254, t.ModelVocabCount);
        Assert.Equal(50009, t.MergeCount);
        Assert.Equal(50277, t.VocabSize);
        Assert.Empty(t.Warnings);
        Assert.Equal(0, t.TokenToId("<|endoftext|>"));
        Assert.Equal(1, t.TokenToId("<|padding|>"));
        Assert.Equal(50276, t.TokenToId("  "));
        Assert.Equal(50254, t.TokenToId(new string(' ', 24)));
        Assert.Equal("<|endoftext|>", t.IdToToken(0));
        Assert.Equal("Ġthe", t.IdToToken(253));
        Assert.Null(t.IdToToken(50277));
        Assert.Null(t.IdToToken(-1));
        Assert.True(t.IsSpecial(0));
        Assert.False(t.IsSpecial(50276)); // the runs of spaces are added, not special
        Assert.True(t.DecodesByBytes);
    }

    [Fact]
    public void SpecialTokensAreMatchedInsideWordsAndSkippedOnRequest()
    {
        var t = Neox;
        var ids = t.Encode("a<|endoftext|>b");
        Assert.Equal(0, ids[1]);
        Assert.Equal(3, ids.Length);
        Assert.Equal("a<|endoftext|>b", t.Decode(ids));
        Assert.Equal("ab", t.Decode(ids, skipSpecialTokens: true));
        // The spaces tokens are not special: they stay.
        Assert.Equal("x  y", t.Decode(t.Encode("x  y"), skipSpecialTokens: true));
        // Unknown ids are skipped, as Hugging Face does.
        Assert.Equal("ab", t.Decode([ids[0], 999_999, -5, ids[2]]));
    }

    [Fact]
    public void AddSpecialTokensUsesThePostProcessor()
    {
        // GPT-NeoX's post-processor is ByteLevel: nothing is added.
        Assert.Equal(Neox.Encode("hi there"), Neox.Encode("hi there", addSpecialTokens: true));
    }

    [Fact]
    public void NfcIsAppliedBeforeBpe()
    {
        // "e" + combining acute is encoded as the precomposed "é".
        Assert.Equal(Neox.Encode("caf\u00e9"), Neox.Encode("cafe\u0301"));
    }

    // ------------------------------------------------------------------ properties on random text

    private static readonly string[] Parts =
    [
        "a", "b", "Z", "the", "The", " ", "  ", "   ", "    ", "        ", "\n", "\n\n", "\t", "\r\n", " \n ", ".", ",", "'s", "'t", "'ll", "'", "\"",
        "0", "42", "3.14", "-", "_", "(", ")", "{", "}", "#", "é", "e\u0301", "ñ", "ü", "Å", "A\u030a", "\u0301", "\u0323\u0301", "ﬁ", "½",
        "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "\u200d", "日本語", "のテキスト", "中文", "한국어", "\u1100\u1161\u11a8", "مرحبا", "नमस्ते",
        "𝐀𝐁", "𠀀", "\u00a0", "\u3000", "\u2028", "’", "“", "—", "…", "<|endoftext|>", "<|padding|>", "<|endoftext", "Ω", "ß", "İ",
    ];

    /// <summary>Any code point but surrogates and U+FFFD: in the BMP (3 in 4) or astral.</summary>
    private static readonly Gen<string> AnyCodePoint = Gen.Frequency((3, Gen.Int[0x20, 0xFFFF]), (1, Gen.Int[0x10000, 0x2FFFF]))
        .Where(cp => cp is not (>= 0xD800 and <= 0xDFFF or 0xFFFD)).Select(char.ConvertFromUtf32);

    /// <summary>Up to 29 pieces: the tricky <see cref="Parts"/> (5 in 6) or any code point. CsCheck shrinks a failing text to a small one.</summary>
    private static readonly Gen<string> Texts = Gen.Frequency((5, Gen.OneOf(Parts)), (1, AnyCodePoint)).Array[0, 29].Select(string.Concat);

    /// <summary>What decoding the encoded text gives back: NFC of each stretch between special tokens (which are not normalized).</summary>
    private static string ExpectedRoundTrip(string text)
    {
        var pieces = System.Text.RegularExpressions.Regex.Split(text, "(<\\|endoftext\\|>|<\\|padding\\|>)");
        return string.Concat(pieces.Select(p => p is "<|endoftext|>" or "<|padding|>" ? p : UnicodeNormalization.Normalize(p, NormalizationKind.Nfc)));
    }

    [Fact]
    public void DecodeOfEncodeIsTheNfcText()
    {
        Texts.Sample(text =>
        {
            var ids = Neox.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, Neox.VocabSize - 1));
            var back = Neox.Decode(ids);
            if (back != ExpectedRoundTrip(text))
                Assert.Fail($"round trip of {Escape(text)} gave {Escape(back)}");
            // Without special tokens in the text, the round trip is exactly NFC(text).
            if (!text.Contains("<|endoftext|>") && !text.Contains("<|padding|>"))
                Assert.Equal(UnicodeNormalization.Normalize(text, NormalizationKind.Nfc), back);
        }, iter: 400);
    }

    [Fact]
    public void EncodingIsTheSameWithAndWithoutTheCache()
    {
        var cold = BpeTokenizer.FromFile(NeoxPath);
        cold.CacheCapacity = 0;
        Texts.Sample(text =>
        {
            var expected = cold.Encode(text);
            Assert.Equal(expected, Neox.Encode(text));
            Assert.Equal(expected, Neox.Encode(text)); // now from the cache
        }, iter: 200, threads: 1);   // one thread: the cache counted below is this thread's
        Assert.Equal(0, cold.CacheCount);
        Assert.True(Neox.CacheCount > 0);
    }

    [Fact]
    public void EncodingFromManyThreadsAgrees()
    {
        Texts.Array[200].Sample(texts => ManyThreadsAgree(texts), iter: 1);
    }

    private static void ManyThreadsAgree(string[] texts)
    {
        var reference = BpeTokenizer.FromFile(NeoxPath);
        reference.CacheCapacity = 0;
        var expected = texts.Select(reference.Encode).ToArray();
        var shared = BpeTokenizer.FromFile(NeoxPath); // one tokenizer, a cache per thread
        Parallel.For(0, texts.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var got = shared.Encode(texts[i % texts.Length]);
            if (!got.SequenceEqual(expected[i % texts.Length])) throw new InvalidOperationException($"text {i % texts.Length} differs");
        });
    }

    [Fact]
    public void CacheIsBounded()
    {
        var t = BpeTokenizer.FromFile(NeoxPath);
        t.CacheCapacity = 10;
        var text = string.Join(" ", Enumerable.Range(0, 100).Select(i => "w" + i));
        var ids = t.Encode(text);
        Assert.True(t.CacheCount <= 10);
        Assert.Equal(ids, t.Encode(text));
        t.ClearCache();
        Assert.Equal(0, t.CacheCount);
    }

    [Fact]
    public void LongWordsMergeAsShortOnes()
    {
        // Words above the scan limit take the priority-queue path; both must give Hugging Face's order of merges.
        var model = Neox.Model;
        Gen.OneOf(Parts).Array[1, 199].Sample(parts =>
        {
            var bytes = Encoding.UTF8.GetBytes(string.Concat(parts).Replace(" ", ""));
            var symbols = bytes.Select(b => Neox.TokenToId(ByteLevel.ByteToChar(b).ToString())!.Value).ToArray();
            var byScan = new List<int>();
            var byQueue = new List<int>();
            model.MergeByScan((int[])symbols.Clone(), byScan);
            model.MergeWithQueue((int[])symbols.Clone(), symbols.Length, byQueue);
            Assert.Equal(byScan, byQueue);
        }, iter: 300);
        // A long word (well above the limit) through the tokenizer.
        var longWord = string.Concat(Enumerable.Repeat("abracadabra", 100));
        Assert.Equal(longWord, Neox.Decode(Neox.Encode(longWord)));
    }

    // ------------------------------------------------------------------ streaming decode

    private static void AssertWholeCharacters(string chunk)
    {
        for (int i = 0; i < chunk.Length; i++)
        {
            if (char.IsHighSurrogate(chunk[i]) && i + 1 < chunk.Length && char.IsLowSurrogate(chunk[i + 1])) { i++; continue; }
            Assert.False(char.IsSurrogate(chunk[i]), $"chunk {Escape(chunk)} has a lone surrogate");
        }
    }

    [Fact]
    public void StreamingDecodeEqualsFullDecodeAndNeverBreaksACharacter()
    {
        int held = 0;
        Texts.Sample(text =>
        {
            var ids = Neox.Encode(text);
            var full = Neox.Decode(ids);
            var stream = Neox.CreateStreamingDecoder();
            var sb = new StringBuilder();
            foreach (var id in ids)
            {
                var chunk = stream.Push(id);
                if (chunk.Length == 0) Interlocked.Increment(ref held);
                AssertWholeCharacters(chunk);
                Assert.DoesNotContain('\uFFFD', chunk); // valid text: nothing is ever emitted half-done
                sb.Append(chunk);
            }
            sb.Append(stream.Flush());
            Assert.Equal(full, sb.ToString());
        }, iter: 300);
        Assert.True(held > 0, "no token ended inside a character");
    }

    [Fact]
    public void StreamingHoldsTheBytesOfAnEmojiUntilItIsComplete()
    {
        var ids = Neox.Encode("😀");
        Assert.True(ids.Length > 1, "the emoji should take more than one token");
        var stream = new StreamingDecoder(Neox);
        for (int i = 0; i < ids.Length - 1; i++) Assert.Equal("", stream.Push(ids[i]));
        Assert.Equal("😀", stream.Push(ids[^1]));
        Assert.Equal("", stream.Flush());
        // An unfinished character at the end of the stream comes out as U+FFFD, as the full decode has it.
        Assert.Equal("", stream.Push(ids[0]));
        Assert.Equal(Neox.Decode([ids[0]]), stream.Flush());
        Assert.Equal("\uFFFD", Neox.Decode([ids[0]]));
    }

    [Fact]
    public void StreamingRandomIdsMatchesFullDecodeIncludingInvalidBytes()
    {
        Gen.Select(Gen.Int[0, Neox.VocabSize - 1].Array[1, 19], Gen.Bool).Sample((ids, skipSpecial) =>
        {
            var stream = new StreamingDecoder(Neox, skipSpecialTokens: skipSpecial);
            var sb = new StringBuilder();
            foreach (var id in ids)
            {
                var chunk = stream.Push((long)id);
                AssertWholeCharacters(chunk);
                sb.Append(chunk);
            }
            sb.Append(stream.Flush());
            Assert.Equal(Neox.Decode(ids, skipSpecialTokens: skipSpecial), sb.ToString());
        }, iter: 300);
    }

    // ------------------------------------------------------------------ pieces: byte alphabet, GPT-2 split, normalization

    [Fact]
    public void ByteAlphabetIsGpt2s()
    {
        var chars = Enumerable.Range(0, 256).Select(b => ByteLevel.ByteToChar((byte)b)).ToArray();
        Assert.Equal(256, chars.Distinct().Count());
        Assert.Equal('Ġ', ByteLevel.ByteToChar((byte)' '));
        Assert.Equal('Ċ', ByteLevel.ByteToChar((byte)'\n'));
        Assert.Equal('A', ByteLevel.ByteToChar((byte)'A'));
        Assert.Equal('\u0100', ByteLevel.ByteToChar(0));
        for (int b = 0; b < 256; b++)
        {
            Assert.True(ByteLevel.TryCharToByte(chars[b], out var back));
            Assert.Equal(b, back);
        }
        Assert.False(ByteLevel.TryCharToByte(' ', out _));
        Assert.Equal("ĠhÃ©", ByteLevel.Encode(" hé"));
    }

    private static string[] Gpt2(string s)
    {
        var list = new List<string>();
        for (int i = 0; i < s.Length;)
        {
            int n = Gpt2Split.NextLength(s, i);
            list.Add(s.Substring(i, n));
            i += n;
        }
        return list.ToArray();
    }

    [Fact]
    public void Gpt2SplitFollowsThePattern()
    {
        Assert.Equal(["Hello", ",", " world", "!"], Gpt2("Hello, world!"));
        Assert.Equal(["a", "\n", "\n", "b"], Gpt2("a\n\nb"));
        Assert.Equal([" ", " x"], Gpt2("  x"));
        Assert.Equal(["x", "  "], Gpt2("x  "));
        Assert.Equal(["\t\t", " a"], Gpt2("\t\t a"));
        Assert.Equal(["I", "'m", " don", "'t"], Gpt2("I'm don't"));
        Assert.Equal(["'", "S", "''", "s"], Gpt2("'S''s"));
        Assert.Equal(["123", "abc", " 45"], Gpt2("123abc 45"));
        Assert.Equal(["😀!"], Gpt2("😀!"));
        Assert.Equal([" 𝐀𝐁", " 𠀀"], Gpt2(" 𝐀𝐁 𠀀")); // letters outside the BMP are letters
        Assert.Equal(["naïve", " café"], Gpt2("naïve café"));
        Assert.Equal([" ", "\u3000", "x"], Gpt2(" \u3000x"));
    }

    [Fact]
    public void UnicodeNormalizationMatchesTheStandard()
    {
        // (input, NFC, NFD, NFKC, NFKD) from Python's unicodedata.
        (string, string, string, string, string)[] cases =
        [
            ("e\u0301", "\u00e9", "e\u0301", "\u00e9", "e\u0301"),
            ("\u1e9b\u0323", "\u1e9b\u0323", "\u017f\u0323\u0307", "\u1e69", "s\u0323\u0307"),
            ("a\u0301\u0323", "\u1ea1\u0301", "a\u0323\u0301", "\u1ea1\u0301", "a\u0323\u0301"),
            ("\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8"),
            ("\ufb01", "\ufb01", "\ufb01", "fi", "fi"),
            ("\u212b", "\u00c5", "A\u030a", "\u00c5", "A\u030a"),
            ("\u00c5\u0327", "\u00c5\u0327", "A\u0327\u030a", "\u00c5\u0327", "A\u0327\u030a"),
            ("\u0958", "\u0915\u093c", "\u0915\u093c", "\u0915\u093c", "\u0915\u093c"),
            ("\ud55c\uae00", "\ud55c\uae00", "\u1112\u1161\u11ab\u1100\u1173\u11af", "\ud55c\uae00", "\u1112\u1161\u11ab\u1100\u1173\u11af"),
            ("\u2460x\u00bd", "\u2460x\u00bd", "\u2460x\u00bd", "1x1\u20442", "1x1\u20442"),
            ("plain ascii", "plain ascii", "plain ascii", "plain ascii", "plain ascii"),
        ];
        foreach (var (input, nfc, nfd, nfkc, nfkd) in cases)
        {
            Assert.Equal(nfc, UnicodeNormalization.Normalize(input, NormalizationKind.Nfc));
            Assert.Equal(nfd, UnicodeNormalization.Normalize(input, NormalizationKind.Nfd));
            Assert.Equal(nfkc, UnicodeNormalization.Normalize(input, NormalizationKind.Nfkc));
            Assert.Equal(nfkd, UnicodeNormalization.Normalize(input, NormalizationKind.Nfkd));
        }
    }

    // ------------------------------------------------------------------ small synthetic tokenizers

    /// <summary>A byte-level BPE tokenizer.json: the 256 byte chars, then one token per merge, in order.</summary>
    internal static string ByteLevelJson(string[] merges, string addedTokens = "[]", string normalizer = "null", bool addPrefixSpace = false)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar((byte)b).ToString()] = b;
        foreach (var m in merges)
        {
            var merged = m.Replace(" ", "");
            vocab.TryAdd(merged, vocab.Count);
        }
        return $$"""
            {
              "version": "1.0",
              "added_tokens": {{addedTokens}},
              "normalizer": {{normalizer}},
              "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": {{(addPrefixSpace ? "true" : "false")}}, "trim_offsets": true, "use_regex": true},
              "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
              "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
              "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                        "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                        "vocab": {{JsonSerializer.Serialize(vocab)}},
                        "merges": {{JsonSerializer.Serialize(merges)}}}
            }
            """;
    }

    private static readonly string[] MaskMerges = ["Ġ I", "Ġ s", "Ġs a", "Ġsa w", "Ġ a", "ð Ł", "ðŁ ĺ", "Ġ ðŁĺ", "ðŁĺ º"];

    private static string[] Tokens(BpeTokenizer t, string text) => t.Encode(text).Select(id => t.IdToToken(id)!).ToArray();

    private static string AddedToken(int id, string content, bool special = true, bool singleWord = false, bool lstrip = false, bool rstrip = false, bool normalized = false)
        => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["id"] = id, ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = lstrip, ["rstrip"] = rstrip,
            ["normalized"] = normalized, ["special"] = special,
        });

    [Fact]
    public void AddedTokenLStripTakesTheSpaceBefore()
    {
        // Hugging Face's own test (lstrip_tokens): byte-level with a prefix space, "<mask>" with lstrip.
        var t = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges, $"[{AddedToken(265, "<mask>", lstrip: true)}]", addPrefixSpace: true));
        Assert.Equal(["ĠI", "Ġsaw", "Ġa", "<mask>", "ĠðŁĺ", "º"], Tokens(t, "I saw a <mask> 😺"));
        Assert.Equal("I saw a<mask> 😺", t.Decode(t.Encode("I saw a <mask> 😺")).TrimStart());
    }

    [Fact]
    public void AddedTokenRStripTakesTheSpaceAfter()
    {
        // Hugging Face's own test (rstrip_tokens): no prefix space, "<mask>" with rstrip.
        var t = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges, $"[{AddedToken(265, "<mask>", rstrip: true)}]"));
        Assert.Equal(["I", "Ġsaw", "Ġa", "Ġ", "<mask>", "ðŁĺº"], Tokens(t, "I saw a <mask> 😺"));
    }

    [Fact]
    public void AddedTokenSingleWordOnlyMatchesWholeWords()
    {
        var t = BpeTokenizer.FromJson(ByteLevelJson([], $"[{AddedToken(256, "ab", special: false, singleWord: true)}]"));
        var tokens = Tokens(t, "ab cab ab_ ab.");
        Assert.Equal(2, tokens.Count(x => x == "ab"));
        Assert.Equal(["ab", "Ġ", "c", "a", "b", "Ġ", "a", "b", "_", "Ġ", "ab", "."], tokens);
    }

    [Fact]
    public void AddedTokensMatchLeftmostLongestAndNormalizedOnesMatchTheNormalizedText()
    {
        var added = $"[{AddedToken(256, "ab", special: false)}, {AddedToken(257, "abc", special: false)}, {AddedToken(258, "Hello", special: false, normalized: true)}, {AddedToken(259, "XY", special: true)}]";
        var t = BpeTokenizer.FromJson(ByteLevelJson([], added, normalizer: """{"type": "Lowercase"}"""));
        Assert.Equal([257, 100], t.Encode("abcd").Select(i => i).ToArray()); // 'd' is byte 100
        // "Hello" is normalized (lowercased) and so is the text: HELLO matches it; "XY" is not normalized: only raw XY.
        Assert.Equal([258], t.Encode("HELLO"));
        Assert.Equal([259], t.Encode("XY"));
        Assert.Equal(["x", "y"], Tokens(t, "xy"));
        Assert.Equal(["x", "y"], Tokens(t, "Xy")); // not XY: lowercased, then no match
    }

    [Fact]
    public void AddedTokenIdsAreAssignedAsHuggingFaceDoes()
    {
        // A token already in the model keeps the model's id; a new one gets the next free id, whatever the file says.
        var added = $"[{AddedToken(5, "a", special: true)}, {AddedToken(999, "<new>")}]";
        var t = BpeTokenizer.FromJson(ByteLevelJson([], added));
        Assert.Equal((int)'a', t.TokenToId("a"));
        Assert.Equal(256, t.TokenToId("<new>"));
        Assert.Equal(2, t.Warnings.Count);
        Assert.Equal(257, t.VocabSize);
    }

    [Fact]
    public void MergesInArrayFormAreTheSameAsStrings()
    {
        var strings = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges));
        var json = ByteLevelJson(MaskMerges).Replace(JsonSerializer.Serialize(MaskMerges),
            JsonSerializer.Serialize(MaskMerges.Select(m => m.Split(' ')).ToArray()));
        var arrays = BpeTokenizer.FromJson(json);
        Assert.Equal(strings.Encode(" I saw 😺"), arrays.Encode(" I saw 😺"));
        Assert.Equal(["ĠI", "Ġsaw", "ĠðŁĺ", "º"], Tokens(arrays, " I saw 😺"));
    }

    [Fact]
    public void SplitAndByteLevelSequenceEqualsByteLevelAlone()
    {
        // Newer files write the GPT-2 split as a Split pre-tokenizer followed by ByteLevel without its own regex.
        var plain = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges));
        var sequence = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges).Replace(
            """{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}""",
            """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}"""));
        var digits = BpeTokenizer.FromJson(ByteLevelJson(MaskMerges).Replace(
            """{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}""",
            """{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]}"""));
        Texts.Sample(text =>
        {
            Assert.Equal(plain.Encode(text), sequence.Encode(text));
            Assert.Equal(text, digits.Decode(digits.Encode(text)));
        }, iter: 100);
        Assert.Equal(["1", "2", "3"], Tokens(digits, "123"));
    }

    [Fact]
    public void SentencePieceStyleBpeWithByteFallbackRoundTrips()
    {
        // Llama-2 style: Prepend + Replace normalizers, no pre-tokenizer, byte fallback, a chain of decoders.
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1 };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = vocab.Count;
        foreach (var tok in new[] { "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "ll", "▁hell", "▁hello" }) vocab[tok] = vocab.Count;
        string[] merges = ["▁ h", "▁h e", "l l", "▁he ll", "▁hell o"];
        var json = $$$"""
            {
              "added_tokens": [{"id": 1, "content": "<s>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false}],
              "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
              "pre_tokenizer": null,
              "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]} } },
              "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
              "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true, "vocab": {{{JsonSerializer.Serialize(vocab)}}}, "merges": {{{JsonSerializer.Serialize(merges)}}}}
            }
            """;
        var t = BpeTokenizer.FromJson(json);
        Assert.False(t.DecodesByBytes);
        var ids = t.Encode("hello world é");
        Assert.Equal(t.TokenToId("▁hello"), ids[0]);
        Assert.Contains(t.TokenToId("<0xC3>")!.Value, ids);
        Assert.Equal("hello world é", t.Decode(ids));
        Assert.Equal([1, .. ids], t.Encode("hello world é", addSpecialTokens: true));
        // Streaming without byte-level decoding: re-decodes a window, still never a broken character.
        var stream = t.CreateStreamingDecoder();
        var sb = new StringBuilder();
        foreach (var id in ids)
        {
            var chunk = stream.Push(id);
            Assert.DoesNotContain('\uFFFD', chunk);
            sb.Append(chunk);
        }
        sb.Append(stream.Flush());
        Assert.Equal("hello world é", sb.ToString());
    }

    // ------------------------------------------------------------------ malformed files

    private TException AssertBadFile<TException>(string name, string content, params string[] fragments) where TException : Exception
    {
        var path = Write(name, content);
        var e = Assert.Throws<TException>(() => BpeTokenizer.FromFile(path));
        Assert.Contains(path, e.Message);
        foreach (var f in fragments)
            Assert.True(e.Message.Contains(f, StringComparison.OrdinalIgnoreCase), $"message does not mention \"{f}\": {e.Message}");
        return e;
    }

    [Fact]
    public void BadJsonNamesTheFileAndLine()
    {
        var e = AssertBadFile<TokenizerFormatException>("bad.json", "{\n  \"model\": {\n    \"type\": \"BPE\",\n    oops\n  }\n}", "line 4", "JSON");
        Assert.EndsWith("bad.json", e.FilePath);
        AssertBadFile<TokenizerFormatException>("truncated.json", ByteLevelJson(MaskMerges)[..500], "not valid JSON");
        AssertBadFile<TokenizerFormatException>("array.json", "[1, 2]", "expected a tokenizer object");
    }

    [Fact]
    public void UnknownModelTypeIsNamed()
        => AssertBadFile<TokenizerFormatException>("wordpiece.json", """{"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}}""",
            "model.type", "WordPiece", "expected 'BPE'");

    [Fact]
    public void MergeNamingAnUnknownTokenIsNamed()
    {
        AssertBadFile<TokenizerFormatException>("merge.json", """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a zz"]}}""",
            "model.merges[1]", "'zz'", "not in model.vocab");
        AssertBadFile<TokenizerFormatException>("merge2.json", """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}""",
            "model.merges[0]", "'ab'");
        AssertBadFile<TokenizerFormatException>("merge3.json", """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["ab"]}}""",
            "model.merges[0]", "two tokens");
    }

    [Fact]
    public void MissingPartsAreNamed()
    {
        AssertBadFile<TokenizerFormatException>("novocab.json", """{"model": {"type": "BPE", "merges": []}}""", "model.vocab", "missing");
        AssertBadFile<TokenizerFormatException>("nomodel.json", """{"normalizer": null}""", "model", "missing");
        AssertBadFile<TokenizerFormatException>("badid.json", """{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}""", "model.vocab[\"a\"]", "integer");
        AssertBadFile<TokenizerFormatException>("badadded.json", """{"added_tokens": [{"content": "x"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""", "added_tokens[0].id");
        var missing = Path.Combine(_dir, "nope.json");
        var e = Assert.Throws<FileNotFoundException>(() => BpeTokenizer.FromFile(missing));
        Assert.Contains(missing, e.Message);
        Assert.Throws<FileNotFoundException>(() => BpeTokenizer.FromFile(_dir)); // a directory without tokenizer.json
    }

    [Fact]
    public void UnsupportedComponentsAreNamed()
    {
        const string model = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
        AssertBadFile<NotSupportedException>("precompiled.json", """{"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}, """ + model, "normalizer", "Precompiled");
        AssertBadFile<NotSupportedException>("seq.json", """{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled"}]}, """ + model, "normalizer.normalizers[1]", "Precompiled");
        AssertBadFile<NotSupportedException>("pre.json", """{"pre_tokenizer": {"type": "UnicodeScripts"}, """ + model, "pre_tokenizer", "UnicodeScripts");
        AssertBadFile<NotSupportedException>("dec.json", """{"decoder": {"type": "CTC"}, """ + model, "decoder", "CTC");
        AssertBadFile<NotSupportedException>("dropout.json", """{"model": {"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}}""", "dropout");
    }

    [Fact]
    public void OtherNormalizersWork()
    {
        string Norm(string normalizer, string text)
        {
            var t = BpeTokenizer.FromJson(ByteLevelJson([], normalizer: normalizer));
            return t.Decode(t.Encode(text));
        }
        Assert.Equal("ﬁ", Norm("""{"type": "NFC"}""", "ﬁ"));
        Assert.Equal("fi", Norm("""{"type": "NFKC"}""", "ﬁ"));
        Assert.Equal("e\u0301", Norm("""{"type": "NFD"}""", "é"));
        Assert.Equal("hello i\u0307σ", Norm("""{"type": "Lowercase"}""", "HeLLo İΣ"));
        Assert.Equal("x y", Norm("""{"type": "Strip", "strip_left": true, "strip_right": true}""", " \t x y \n"));
        Assert.Equal("cafe", Norm("""{"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}""", "café"));
        Assert.Equal("a_b_c", Norm("""{"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"}""", "a  b\tc"));
        Assert.Equal(">>x", Norm("""{"type": "Prepend", "prepend": ">>"}""", "x"));
        Assert.Equal("hello world", Norm("""{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": false, "strip_accents": null, "lowercase": true}""", "HÉLLO\u0000\twörld"));
        Assert.Equal("a b ", Norm("""{"type": "Nmt"}""", "a\u0001\nb\u200b"));
    }

    // ------------------------------------------------------------------ character tokenizer

    [Fact]
    public void CharTokenizerRoundTripsAndSavesAndLoads()
    {
        const string text = "hello world\nΩ😀";
        var t = CharTokenizer.FromText(text);
        Assert.Equal(["\n", " ", "d", "e", "h", "l", "o", "r", "w", "Ω", "😀"], t.Characters);
        Assert.Equal(11, t.VocabSize);
        var ids = t.Encode(text);
        Assert.Equal(text.Length - 1, ids.Length); // the emoji is one character
        Assert.Equal(text, t.Decode(ids));
        Assert.Equal(10, t.TokenToId("😀"));
        Assert.Equal("😀", t.IdToToken(10));
        var path = Path.Combine(_dir, "chars.json");
        t.Save(path);
        var back = CharTokenizer.FromFile(path);
        Assert.Equal(t.Characters, back.Characters);
        Assert.Equal(ids, back.Encode(text));
        Assert.IsType<CharTokenizer>(Tokenizer.Load(path));
        Assert.IsType<BpeTokenizer>(Tokenizer.Load(Path.GetDirectoryName(NeoxPath)!));
        // Streaming over a character tokenizer.
        var stream = back.CreateStreamingDecoder();
        Assert.Equal(text, string.Concat(ids.Select(stream.Push)) + stream.Flush());
    }

    [Fact]
    public void CharTokenizerRejectsUnknownCharactersAndBadFiles()
    {
        var t = CharTokenizer.FromText("abc");
        var e = Assert.Throws<ArgumentException>(() => t.Encode("abz"));
        Assert.Contains("'z'", e.Message);
        Assert.Contains("index 2", e.Message);
        var dup = Write("dup.json", """{"type": "char", "vocab": ["a", "b", "a"]}""");
        var d = Assert.Throws<TokenizerFormatException>(() => CharTokenizer.FromFile(dup));
        Assert.Contains(dup, d.Message);
        Assert.Contains("repeats", d.Message);
        var multi = Write("multi.json", """{"type": "char", "vocab": ["ab"]}""");
        Assert.Contains("one character", Assert.Throws<TokenizerFormatException>(() => CharTokenizer.FromFile(multi)).Message);
        var wrong = Write("wrong.json", """{"type": "words", "vocab": []}""");
        Assert.Contains("\"char\"", Assert.Throws<TokenizerFormatException>(() => CharTokenizer.FromFile(wrong)).Message);
    }

    // ------------------------------------------------------------------ the commands

    private static string LastLine(string stdout) => stdout.TrimEnd('\n', '\r').Split('\n')[^1].TrimEnd('\r');

    [Fact]
    public void TokenizeCommandPrintsTheFixtureIds()
    {
        var c = Cases.Value.First(x => x.Text.Contains("😀"));
        var (code, stdout, stderr) = CliTests.Run("tokenize", "--tokenizer", NeoxPath, "--text", c.Text);
        Assert.True(code == 0, stderr);
        Assert.Equal(string.Join(",", c.Ids), LastLine(stdout));

        (code, stdout, stderr) = CliTests.Run("tokenize", "--tokenizer", Path.GetDirectoryName(NeoxPath)!, "--text", c.Text, "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(LastLine(stdout));
        Assert.Equal(c.Ids, doc.RootElement.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray());
    }

    [Fact]
    public void TokenizeCommandReadsAFile()
    {
        var c = Cases.Value.First(x => x.Text.Contains('\t'));
        var file = Write("input.txt", c.Text);
        var (code, stdout, stderr) = CliTests.Run("tokenize", "--tokenizer", NeoxPath, "--file", file);
        Assert.True(code == 0, stderr);
        Assert.Equal(string.Join(",", c.Ids), LastLine(stdout));
    }

    [Fact]
    public void DetokenizeCommandPrintsTheText()
    {
        var c = Cases.Value.First(x => x.Text.Contains("😀"));
        var (code, stdout, stderr) = CliTests.Run("detokenize", "--tokenizer", NeoxPath, "--ids", string.Join(",", c.Ids), "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(LastLine(stdout));
        Assert.Equal(c.Decoded, doc.RootElement.GetProperty("text").GetString());

        (code, stdout, stderr) = CliTests.Run("detokenize", "--tokenizer", NeoxPath, "--ids", "12092, 13, 1533, 2");
        Assert.True(code == 0, stderr);
        Assert.Equal("Hello, world!", stdout.TrimEnd('\n'));

        (code, stdout, _) = CliTests.Run("detokenize", "--tokenizer", NeoxPath, "--ids", "0,12092,0", "--skip-special-tokens");
        Assert.Equal(0, code);
        Assert.Equal("Hello", stdout.TrimEnd('\n'));
    }

    [Fact]
    public void CommandsExplainBadInput()
    {
        var (code, _, stderr) = CliTests.Run("tokenize", "--tokenizer", "/nonexistent/tokenizer.json", "--text", "x");
        Assert.NotEqual(0, code);
        Assert.Contains("/nonexistent/tokenizer.json", stderr);

        var bad = Write("bad.json", "{ nope");
        (code, _, stderr) = CliTests.Run("tokenize", "--tokenizer", bad, "--text", "x");
        Assert.NotEqual(0, code);
        Assert.Contains(bad, stderr);
        Assert.Contains("line 1", stderr);

        (code, _, stderr) = CliTests.Run("tokenize", "--tokenizer", NeoxPath);
        Assert.NotEqual(0, code);
        Assert.Contains("--text", stderr);

        (code, _, stderr) = CliTests.Run("detokenize", "--tokenizer", NeoxPath, "--ids", "1,x,3");
        Assert.NotEqual(0, code);
        Assert.Contains("'x'", stderr);

        (code, _, stderr) = CliTests.Run("detokenize", "--tokenizer", NeoxPath, "--ids", "5,99999999");
        Assert.NotEqual(0, code);
        Assert.Contains("99999999", stderr);
    }

    [Fact]
    public void CommandsHaveHelpWithExamples()
    {
        foreach (var command in new[] { "tokenize", "detokenize" })
        {
            var (code, stdout, _) = CliTests.Run(command, "--help");
            Assert.Equal(0, code);
            Assert.Contains("Examples", stdout);
            Assert.Contains("--tokenizer", stdout);
        }
    }

    private static string Escape(string s) => JsonSerializer.Serialize(s);
}
