using System.Text.Json.Nodes;
using Mamba4.Text;

namespace Mamba4.Tests.Text;

/// <summary>The Jinja subset of chat templates against jinja2 itself (tests/fixtures/chat-templates.json, written by
/// scripts/fixtures/make_chat_template_fixtures.py with transformers' settings: trim_blocks, lstrip_blocks).</summary>
public class ChatTemplateTests
{
    private static readonly JsonNode Fixture = JsonNode.Parse(File.ReadAllText(Fixtures.Repo("chat-templates.json")))!;

    public static TheoryData<int> Cases() => [.. Enumerable.Range(0, Fixture["cases"]!.AsArray().Count)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersAsJinja2Does(int index)
    {
        var c = Fixture["cases"]![index]!;
        var name = c["template"]!.GetValue<string>();
        var template = ChatTemplate.Parse(Fixture["templates"]![name]!.GetValue<string>(), c["bos_token"]!.GetValue<string>(), c["eos_token"]!.GetValue<string>());
        var messages = c["messages"]!.AsArray().Select(m => new ChatTurn(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())).ToList();
        bool add = c["add_generation_prompt"]!.GetValue<bool>();
        if (c["error"] is { } error)
        {
            var e = Assert.Throws<ChatTemplateException>(() => template.Render(messages, add));
            Assert.Equal(error.GetValue<string>(), e.Message);
        }
        else Assert.Equal(c["expected"]!.GetValue<string>(), template.Render(messages, add));
    }

    [Theory]
    [InlineData("{% macro m() %}x{% endmacro %}", "macro")]
    [InlineData("{% include 'other.jinja' %}", "include")]
    [InlineData("{{ messages | tojson }}", "tojson")]
    [InlineData("{{ messages | map(attribute='content') | join }}", "map")]
    [InlineData("{% set a, b = 1, 2 %}", "tuples")]
    [InlineData("{% set ns = namespace(1) %}", "keyword arguments only")]
    [InlineData("{% for m in messages %}{{ m }}{% else %}none{% endfor %}", "else")]
    [InlineData("{{ messages[0].keys() }}", "keys")]
    [InlineData("{% if x %}never closed", "endif")]
    [InlineData("{{ 'unclosed }}", "unterminated")]
    public void ConstructsOutsideTheSubsetAreRefusedByName(string source, string named)
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source, origin: "t.json: chat_template"));
        Assert.StartsWith("t.json: chat_template: ", e.Message);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void TheDefaultIsOneRoleColonContentLinePerMessageThenTheAssistantPrefix()
    {
        var prompt = ChatTemplate.Default.Render([new("system", "Be brief."), new("user", "hi")]);
        Assert.Equal("system: Be brief.\nuser: hi\nassistant:", prompt);
        Assert.Equal("user: hi\n", ChatTemplate.Default.Render([new("user", "hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void AModelDirectoryTemplateAndItsTokensComeFromTokenizerConfig()
    {
        var dir = Directory.CreateTempSubdirectory("mamba4-chat-").FullName;
        try
        {
            Assert.True(ChatTemplate.ForModelDirectory(dir).IsDefault);
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """
                {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                 "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"}]}
                """);
            var t = ChatTemplate.ForModelDirectory(dir);
            Assert.Equal("</s>", t.EosToken);
            Assert.Equal("<s>[user]hi</s>", t.Render([new("user", "hi")]));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"chat_template": "{% filter upper %}x{% endfilter %}"}""");
            var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.ForModelDirectory(dir));
            Assert.Contains("tokenizer_config.json: chat_template: '{% filter %}' is not supported", e.Message);
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"chat_template": 3}""");
            Assert.Contains("chat_template: expected a string", Assert.Throws<InvalidDataException>(() => ChatTemplate.ForModelDirectory(dir)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void RenderingIsBoundedEvenWhenLoopsNest()
    {
        var t = ChatTemplate.Parse("{% for a in messages %}{% for b in messages %}{% for c in messages %}{{ a.content + b.content + c.content }}{% endfor %}{% endfor %}{% endfor %}");
        var big = new string('x', 20_000);
        var messages = Enumerable.Range(0, 30).Select(_ => new ChatTurn("user", big)).ToList();
        var e = Assert.Throws<ChatTemplateException>(() => t.Render(messages));
        Assert.Contains("longer than", e.Message);
    }

    [Theory]
    [InlineData("{% set ns = namespace(s='ab') %}{% for m in messages %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for m in messages %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for m in messages %}{% set ns.s = [ns.s, ns.s]|join(ns.s) %}{% endfor %}{{ ns.s|length }}")]
    public void AStringTheTemplateBuildsIsBoundedBeforeItIsBuilt(string source)
    {
        // Doubling once per message: 40 messages would be 2^41 characters; the bound stops it at 4 Mi, not at the output.
        var messages = Enumerable.Range(0, 40).Select(_ => new ChatTurn("user", "hi")).ToList();
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source).Render(messages));
        Assert.Contains("builds a string longer than 4194304 characters", e.Message);
    }

    [Theory]
    [InlineData("(", ")")]
    [InlineData("[", "]")]
    [InlineData("-", "")]
    [InlineData("not ", "")]
    public void DeepNestingIsOneErrorNotAStackOverflow(string open, string close)
    {
        string deep = "{{ " + string.Concat(Enumerable.Repeat(open, 100_000)) + "1" + string.Concat(Enumerable.Repeat(close, 100_000)) + " }}";
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(deep));
        Assert.Contains("nests deeper than 64 levels", e.Message);
        string blocks = string.Concat(Enumerable.Repeat("{% if true %}", 100_000)) + "x" + string.Concat(Enumerable.Repeat("{% endif %}", 100_000));
        e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(blocks));
        Assert.Contains("nests deeper than 64 levels", e.Message);
    }

    [Fact]
    public void NestingWithinTheBoundStillRenders()
    {
        string nested = "{{ " + new string('(', 30) + "1 + 2" + new string(')', 30) + " }}";
        Assert.Equal("3", ChatTemplate.Parse(nested).Render([]));
    }
}
