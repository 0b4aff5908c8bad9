using System.CommandLine;
using System.Text;
using System.Text.Json;
using Mamba4.Text;

namespace Mamba4.Cli;

/// <summary><c>mamba4 tokenize</c>: text → ids with a Hugging Face tokenizer.json (or a character tokenizer).</summary>
internal static class TokenizeCommand
{
    internal static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    internal static Option<string> TokenizerOption() => new("--tokenizer")
    {
        Description = "tokenizer.json (Hugging Face), a directory holding one, or a character tokenizer saved by Mamba4",
        Required = true,
    };

    public static Command Create()
    {
        var tokenizer = TokenizerOption();
        var text = new Option<string?>("--text") { Description = "the text to tokenize" };
        var file = new Option<string?>("--file") { Description = "a UTF-8 file to tokenize, plain or gzip (- for standard input)" };
        var json = new Option<bool>("--json") { Description = "print {\"ids\": [...]} instead of comma-separated ids" };
        var special = new Option<bool>("--add-special-tokens") { Description = "add the special tokens of the tokenizer's post-processor (e.g. a BOS token)" };
        var cmd = new Command("tokenize", """
            Turn text into token ids exactly as Hugging Face tokenizers does (encode with add_special_tokens=False;
            special tokens written in the text, such as <|endoftext|>, are matched). The ids are printed
            comma-separated on the last line of standard output; a summary goes to standard error.

            Examples:
              mamba4 tokenize --tokenizer ./gpt-neox-20b/tokenizer.json --text "Hello, world!"
              mamba4 tokenize --tokenizer ./mamba-130m-hf --file story.txt --json
              echo "some text" | mamba4 tokenize --tokenizer tokenizer.json --file -
            """);
        foreach (var o in new Option[] { tokenizer, text, file, json, special }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            string? t = parse.GetValue(text), f = parse.GetValue(file);
            if ((t is null) == (f is null))
            {
                Console.Error.WriteLine("error: give the text with --text TEXT or --file PATH (one of them)");
                return 2;
            }
            var tok = Tokenizer.Load(parse.GetValue(tokenizer)!);
            var input = t ?? ReadText(f!);
            var ids = parse.GetValue(special) && tok is BpeTokenizer bpe ? bpe.Encode(input, addSpecialTokens: true) : tok.Encode(input);
            Console.OutputEncoding = new UTF8Encoding(false);
            Console.Error.WriteLine($"{ids.Length} tokens from {input.Length} chars ({Encoding.UTF8.GetByteCount(input)} UTF-8 bytes)");
            Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(new { ids }, Json) : string.Join(",", ids));
            return 0;
        });
        return cmd;
    }

    /// <summary>The file's text, byte for byte (a BOM stays, as Python's utf-8 codec keeps it); invalid UTF-8 is an error naming the byte.</summary>
    private static string ReadText(string path)
    {
        byte[] bytes;
        if (path == "-")
        {
            using var stdin = Console.OpenStandardInput();
            using var buffer = new MemoryStream();
            stdin.CopyTo(buffer);
            bytes = buffer.ToArray();
        }
        else
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"text file not found: {path}", path);
            bytes = Mamba4.IO.DataFile.ReadAllBytes(path);   // plain or gzip
        }
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{(path == "-" ? "standard input" : path)}: not valid UTF-8 at byte {e.Index}");
        }
    }
}

/// <summary><c>mamba4 detokenize</c>: ids → text.</summary>
internal static class DetokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = TokenizeCommand.TokenizerOption();
        var ids = new Option<string>("--ids") { Description = "token ids, comma-separated (e.g. 12092,13,1533,2)", Required = true };
        var json = new Option<bool>("--json") { Description = "print {\"text\": \"...\"} instead of the bare text" };
        var skip = new Option<bool>("--skip-special-tokens") { Description = "leave out special tokens such as <|endoftext|>" };
        var cmd = new Command("detokenize", """
            Turn token ids back into text exactly as Hugging Face tokenizers does (decode with
            skip_special_tokens=False unless --skip-special-tokens). The text is printed as it is.

            Examples:
              mamba4 detokenize --tokenizer ./gpt-neox-20b/tokenizer.json --ids 12092,13,1533,2
              mamba4 detokenize --tokenizer ./mamba-130m-hf --ids "0, 10758, 2220" --skip-special-tokens --json
            """);
        foreach (var o in new Option[] { tokenizer, ids, json, skip }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(tokenizer)!;
            var tok = Tokenizer.Load(path);
            var raw = parse.GetValue(ids)!;
            var list = new List<int>();
            foreach (var item in raw.Trim().Trim('[', ']').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!long.TryParse(item, out var id))
                {
                    Console.Error.WriteLine($"error: --ids must be comma-separated integers; '{item}' is not one");
                    return 2;
                }
                if (id < 0 || id >= tok.VocabSize || tok.IdToToken((int)id) is null)
                {
                    Console.Error.WriteLine($"error: id {id} is not in the tokenizer {path} (ids 0..{tok.VocabSize - 1})");
                    return 2;
                }
                list.Add((int)id);
            }
            var text = tok.Decode(list.ToArray(), parse.GetValue(skip));
            Console.OutputEncoding = new UTF8Encoding(false);
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(new { text }, TokenizeCommand.Json));
            else
            {
                Console.Write(text);
                if (!Console.IsOutputRedirected && !text.EndsWith('\n')) Console.WriteLine();
            }
            return 0;
        });
        return cmd;
    }
}
