using System.Globalization;
using System.Text;

namespace Mamba4.Text;

/// <summary>A chat template broke a rule while rendering (raise_exception, a wrong type, an undefined attribute) or while being parsed.</summary>
public sealed class ChatTemplateException(string message) : FormatException(message);

/// <summary>
/// The Jinja subset that Hugging Face chat templates use, rendered as transformers renders them (trim_blocks and
/// lstrip_blocks on; whitespace control with '-'). Statements: for (loop.index, index0, first, last, length,
/// revindex, revindex0), if/elif/else, set (a variable, or a namespace()'s attribute). Expressions: string/number/true/false/none literals, lists, variables,
/// x.attr, x['key'], x[i], x[a:b], + - * / // %, ~, comparisons, in / not in, and/or/not, `a if c else b`,
/// tests (is [not] defined/undefined/none/string/number/boolean/mapping/iterable/sequence/even/odd), filters (trim, length, count,
/// lower, upper, string, first, last, default, join), namespace(name=value, …), string methods (strip, lstrip, rstrip, startswith, endswith, lower, upper,
/// title), raise_exception(msg). Any other construct (macro, call, include, map, tojson, …) is refused at parse time
/// with a <see cref="ChatTemplateException"/> naming it. Rendering is bounded: loops run over finite lists and the
/// output is capped at <see cref="MaxOutputChars"/>.
/// </summary>
internal sealed class Jinja
{
    public const int MaxOutputChars = 4 << 20;

    /// <summary>The deepest nesting of blocks ({% if %}, {% for %}) and of expressions (parentheses, lists, unary
    /// operators) a template may have: real templates nest a few levels; deeper would only exhaust the stack.</summary>
    public const int MaxNesting = 64;

    private static int Deeper(ref int depth) =>
        ++depth <= MaxNesting ? depth : throw new ChatTemplateException($"the template nests deeper than {MaxNesting} levels");

    /// <summary>A string the template builds (~, +, join) is held to the output's bound, checked before it is built, so
    /// repeated doubling stops at once.</summary>
    private static string Concat(string a, string b)
    {
        CheckLength((long)a.Length + b.Length);
        return a + b;
    }

    private static string Join(string separator, List<string> parts)
    {
        CheckLength(parts.Sum(p => (long)p.Length) + (long)separator.Length * Math.Max(0, parts.Count - 1));
        return string.Join(separator, parts);
    }

    private static void CheckLength(long length)
    {
        if (length > MaxOutputChars) throw new ChatTemplateException($"the template builds a string longer than {MaxOutputChars} characters");
    }
    private readonly List<Node> _body;

    private Jinja(List<Node> body) => _body = body;

    public static Jinja Parse(string source) => new(new Parser(Lex(source)).Block(out _));

    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var ctx = new Context(variables);
        Exec(_body, ctx);
        return ctx.Output.ToString();
    }

    // ---- lexing: text, {{ expr }}, {% stmt %}, {# comment #}, with '-' trimming, trim_blocks and lstrip_blocks ----

    private enum Kind { Text, Expr, Stmt }
    private readonly record struct Segment(Kind Kind, string Body);

    private static List<Segment> Lex(string s)
    {
        var segments = new List<Segment>();
        int i = 0;
        bool trimNextNewline = false, stripNextLeading = false;
        while (i < s.Length)
        {
            int open = s.IndexOf('{', i);
            while (open >= 0 && open + 1 < s.Length && s[open + 1] is not ('{' or '%' or '#')) open = s.IndexOf('{', open + 1);
            if (open < 0 || open + 1 >= s.Length) open = s.Length;
            var raw = s[i..open];
            // lstrip_blocks applies when only spaces and tabs stand between the line's start and a block tag
            int lastNewline = raw.LastIndexOf('\n');
            int indent = raw.Length - (lastNewline + 1);
            bool atLineStart = raw.AsSpan(lastNewline + 1).Trim(" \t").IsEmpty && (lastNewline >= 0 || i == 0 || s[i - 1] == '\n');
            var text = raw;
            if (stripNextLeading) text = text.TrimStart();
            else if (trimNextNewline && text.StartsWith('\n')) text = text[1..];
            else if (trimNextNewline && text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
            if (open == s.Length) { if (text.Length > 0) segments.Add(new(Kind.Text, text)); break; }
            char tag = s[open + 1];
            string close = tag switch { '{' => "}}", '%' => "%}", _ => "#}" };
            int end = s.IndexOf(close, open + 2, StringComparison.Ordinal);
            if (end < 0) throw new ChatTemplateException($"unclosed '{{{tag}' at character {open}");
            bool stripBefore = open + 2 < end && s[open + 2] == '-';
            bool stripAfter = end - 1 >= open + 2 && s[end - 1] == '-';
            if (stripBefore) text = text.TrimEnd();
            else if (tag != '{' && atLineStart) text = text[..Math.Max(0, text.Length - indent)];
            if (text.Length > 0) segments.Add(new(Kind.Text, text));
            var body = s[(open + 2 + (stripBefore ? 1 : 0))..(end - (stripAfter ? 1 : 0))].Trim();
            if (tag == '{') segments.Add(new(Kind.Expr, body));
            else if (tag == '%') segments.Add(new(Kind.Stmt, body));
            stripNextLeading = stripAfter;
            trimNextNewline = tag != '{';   // trim_blocks
            i = end + 2;
        }
        return segments;
    }

    // ---- the tree ----

    private abstract record Node;
    private sealed record TextNode(string Text) : Node;
    private sealed record OutputNode(Expr Value) : Node;
    private sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node;
    private sealed record ForNode(string[] Targets, Expr Items, List<Node> Body) : Node;
    /// <summary>{% set name = v %}, or {% set name.attribute = v %} on a namespace.</summary>
    private sealed record SetNode(string Name, string? Attribute, Expr Value) : Node;

    private abstract record Expr;
    private sealed record Literal(object? Value) : Expr;
    private sealed record Name(string Id) : Expr;
    private sealed record ListExpr(List<Expr> Items) : Expr;
    private sealed record Attr(Expr Target, string Key) : Expr;
    private sealed record Index(Expr Target, Expr Key) : Expr;
    private sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop) : Expr;
    private sealed record Call(Expr Target, List<Expr> Args) : Expr;
    private sealed record NamespaceExpr(List<(string Name, Expr Value)> Fields) : Expr;
    private sealed record Unary(string Op, Expr Operand) : Expr;
    private sealed record Binary(string Op, Expr Left, Expr Right) : Expr;
    private sealed record Test(Expr Operand, string Name, bool Negated) : Expr;
    private sealed record Filter(Expr Operand, string Name, List<Expr> Args) : Expr;
    private sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr;

    private static readonly HashSet<string> Filters = ["trim", "length", "count", "lower", "upper", "string", "first", "last", "default", "d", "join"];
    private static readonly HashSet<string> Tests = ["defined", "undefined", "none", "string", "number", "integer", "boolean", "mapping", "iterable", "sequence", "even", "odd", "true", "false"];
    private static readonly HashSet<string> Methods = ["strip", "lstrip", "rstrip", "startswith", "endswith", "lower", "upper", "title"];

    // ---- parsing ----

    private sealed class Parser(List<Segment> segments)
    {
        private int _at;

        private int _depth;

        /// <summary>Nodes up to a statement that closes the block (endfor, elif, else, endif) or the end; that statement's text in <paramref name="closer"/>.</summary>
        public List<Node> Block(out string? closer)
        {
            Deeper(ref _depth);
            try { return BlockBody(out closer); }
            finally { _depth--; }
        }

        private List<Node> BlockBody(out string? closer)
        {
            var nodes = new List<Node>();
            while (_at < segments.Count)
            {
                var seg = segments[_at++];
                if (seg.Kind == Kind.Text) { nodes.Add(new TextNode(seg.Body)); continue; }
                if (seg.Kind == Kind.Expr) { nodes.Add(new OutputNode(ParseAll(seg.Body))); continue; }
                var word = FirstWord(seg.Body);
                switch (word)
                {
                    case "endfor" or "endif" or "elif" or "else":
                        closer = seg.Body;
                        return nodes;
                    case "if": nodes.Add(If(seg.Body[2..])); break;
                    case "for": nodes.Add(For(seg.Body[3..])); break;
                    case "set": nodes.Add(Set(seg.Body[3..])); break;
                    default: throw new ChatTemplateException($"'{{% {word} %}}' is not supported (the chat-template subset has for, if/elif/else, set)");
                }
            }
            closer = null;
            return nodes;
        }

        private Node If(string condition)
        {
            var branches = new List<(Expr, List<Node>)>();
            var cond = ParseAll(condition);
            while (true)
            {
                var body = Block(out var closer);
                branches.Add((cond, body));
                switch (closer is null ? null : FirstWord(closer))
                {
                    case "elif": cond = ParseAll(closer![4..]); continue;
                    case "else":
                        var elseBody = Block(out var end);
                        if (end is null || FirstWord(end) != "endif") throw new ChatTemplateException("'{% else %}' without a matching '{% endif %}'");
                        return new IfNode(branches, elseBody);
                    case "endif": return new IfNode(branches, null);
                    default: throw new ChatTemplateException($"'{{% if {condition.Trim()} %}}' has no matching '{{% endif %}}'");
                }
            }
        }

        private Node For(string header)
        {
            var lexer = new ExprLexer(header);
            var targets = new List<string> { lexer.ExpectName() };
            while (lexer.Accept(",")) targets.Add(lexer.ExpectName());
            if (!lexer.AcceptWord("in")) throw new ChatTemplateException($"'{{% for {header.Trim()} %}}': expected 'in'");
            var items = new ExprParser(lexer).Expression(allowConditional: false);
            if (!lexer.AtEnd) throw new ChatTemplateException($"'{{% for {header.Trim()} %}}': '{lexer.Peek}' is not supported here (no loop filters, no recursive loops)");
            var body = Block(out var closer);
            if (closer is null || FirstWord(closer) != "endfor")
                throw new ChatTemplateException(closer is not null && FirstWord(closer) == "else" ? "'{% for %}…{% else %}' is not supported" : $"'{{% for {header.Trim()} %}}' has no matching '{{% endfor %}}'");
            return new ForNode([.. targets], items, body);
        }

        private static Node Set(string rest)
        {
            int eq = rest.IndexOf('=');
            if (eq < 0) throw new ChatTemplateException("'{% set x %}…{% endset %}' (a block set) is not supported: use {% set x = expression %}");
            var target = rest[..eq].Trim().Split('.');
            if (target.Length > 2 || !target.All(IsIdentifier))
                throw new ChatTemplateException($"'{{% set {rest[..eq].Trim()} = … %}}' is not supported: only a variable or a namespace's attribute (ns.x) can be set (no tuples)");
            return new SetNode(target[0], target.Length == 2 ? target[1] : null, ParseAll(rest[(eq + 1)..]));
        }

        private static Expr ParseAll(string text)
        {
            var lexer = new ExprLexer(text);
            var e = new ExprParser(lexer).Expression(allowConditional: true);
            if (!lexer.AtEnd) throw new ChatTemplateException($"unexpected '{lexer.Peek}' in '{text.Trim()}'");
            return e;
        }

        private static string FirstWord(string body)
        {
            int n = 0;
            while (n < body.Length && (char.IsLetterOrDigit(body[n]) || body[n] == '_')) n++;
            return n == 0 ? body : body[..n];
        }
    }

    private static bool IsIdentifier(string s) => s.Length > 0 && (char.IsLetter(s[0]) || s[0] == '_') && s.All(c => char.IsLetterOrDigit(c) || c == '_');

    /// <summary>Tokens of one expression: names, numbers, string literals ('…' or "…" with \n \t \\ \' \" escapes) and operators.</summary>
    private sealed class ExprLexer
    {
        private static readonly string[] Operators = ["//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", ".", ",", ":", "|", "=", "{", "}"];
        private readonly List<object> _tokens = [];   // string for names/operators, Literal for literals
        private int _at;

        public ExprLexer(string s)
        {
            int i = 0;
            while (i < s.Length)
            {
                char c = s[i];
                if (char.IsWhiteSpace(c)) { i++; continue; }
                if (char.IsLetter(c) || c == '_')
                {
                    int j = i;
                    while (j < s.Length && (char.IsLetterOrDigit(s[j]) || s[j] == '_')) j++;
                    _tokens.Add(s[i..j]);
                    i = j;
                }
                else if (char.IsDigit(c))
                {
                    int j = i;
                    while (j < s.Length && (char.IsDigit(s[j]) || (s[j] == '.' && j + 1 < s.Length && char.IsDigit(s[j + 1])))) j++;
                    var num = s[i..j];
                    _tokens.Add(new Literal(num.Contains('.') ? (object)double.Parse(num, CultureInfo.InvariantCulture) : long.Parse(num, CultureInfo.InvariantCulture)));
                    i = j;
                }
                else if (c is '\'' or '"')
                {
                    var sb = new StringBuilder();
                    int j = i + 1;
                    for (; j < s.Length && s[j] != c; j++)
                    {
                        if (s[j] != '\\' || j + 1 >= s.Length) { sb.Append(s[j]); continue; }
                        j++;
                        sb.Append(s[j] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => s[j] });
                    }
                    if (j >= s.Length) throw new ChatTemplateException($"unterminated string literal in '{s.Trim()}'");
                    _tokens.Add(new Literal(sb.ToString()));
                    i = j + 1;
                }
                else
                {
                    var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0)
                        ?? throw new ChatTemplateException($"unexpected character '{c}' in '{s.Trim()}'");
                    _tokens.Add(op);
                    i += op.Length;
                }
            }
        }

        public bool AtEnd => _at >= _tokens.Count;
        public object? Peek => AtEnd ? null : _tokens[_at] is Literal l ? l.Value : _tokens[_at];
        public object Next() => !AtEnd ? _tokens[_at++] : throw new ChatTemplateException("the expression ends too early");
        public bool Accept(string op) { if (!AtEnd && _tokens[_at] is string s && s == op) { _at++; return true; } return false; }
        public bool AcceptWord(string word) => Accept(word);
        public bool PeekIs(string op, int ahead = 0) => _at + ahead < _tokens.Count && _tokens[_at + ahead] is string s && s == op;
        public void Expect(string op) { if (!Accept(op)) throw new ChatTemplateException($"expected '{op}', got '{Peek ?? "the end"}'"); }
        public string ExpectName() => Next() is string s && IsIdentifier(s) ? s : throw new ChatTemplateException("expected a name");
    }

    /// <summary>Precedence, low to high: a if c else b; or; and; not; comparisons, in, is; ~; + -; * / // %; unary -; filters; .attr [i] (call); primary.</summary>
    private sealed class ExprParser(ExprLexer lx)
    {
        private int _depth;

        public Expr Expression(bool allowConditional)
        {
            Deeper(ref _depth);
            try { return ExpressionBody(allowConditional); }
            finally { _depth--; }
        }

        private Expr ExpressionBody(bool allowConditional)
        {
            var e = Or();
            if (allowConditional && lx.AcceptWord("if"))
            {
                var cond = Or();
                Expr? otherwise = lx.AcceptWord("else") ? Expression(true) : null;
                return new Conditional(cond, e, otherwise);
            }
            return e;
        }

        private Expr Or() { var e = And(); while (lx.AcceptWord("or")) e = new Binary("or", e, And()); return e; }
        private Expr And() { var e = Not(); while (lx.AcceptWord("and")) e = new Binary("and", e, Not()); return e; }
        private Expr Not() => lx.AcceptWord("not") ? new Unary("not", Nested(Not)) : Compare();

        private Expr Nested(Func<Expr> parse)
        {
            Deeper(ref _depth);
            try { return parse(); }
            finally { _depth--; }
        }

        private Expr Compare()
        {
            var e = Concat();
            while (true)
            {
                if (lx.Peek is string op && op is "==" or "!=" or "<" or "<=" or ">" or ">=") { lx.Next(); e = new Binary(op, e, Concat()); }
                else if (lx.AcceptWord("in")) e = new Binary("in", e, Concat());
                else if (lx.PeekIs("not") && lx.PeekIs("in", 1)) { lx.Next(); lx.Next(); e = new Unary("not", new Binary("in", e, Concat())); }
                else if (lx.AcceptWord("is"))
                {
                    bool negated = lx.AcceptWord("not");
                    var name = lx.ExpectName();
                    if (!Tests.Contains(name)) throw new ChatTemplateException($"the test 'is {name}' is not supported (supported: {string.Join(", ", Tests)})");
                    e = new Test(e, name, negated);
                }
                else return e;
            }
        }

        private Expr Concat() { var e = Sum(); while (lx.Accept("~")) e = new Binary("~", e, Sum()); return e; }
        private Expr Sum() { var e = Product(); while (lx.Peek is "+" or "-") e = new Binary((string)lx.Next(), e, Product()); return e; }
        private Expr Product() { var e = Unary(); while (lx.Peek is "*" or "/" or "//" or "%") e = new Binary((string)lx.Next(), e, Unary()); return e; }
        private Expr Unary() => lx.Accept("-") ? new Unary("-", Nested(Unary)) : Filters(Postfix(Primary()));

        private Expr Filters(Expr e)
        {
            while (lx.Accept("|"))
            {
                var name = lx.ExpectName();
                if (!Jinja.Filters.Contains(name)) throw new ChatTemplateException($"the filter '|{name}' is not supported (supported: {string.Join(", ", Jinja.Filters)})");
                var args = lx.Accept("(") ? Arguments() : [];
                e = Postfix(new Filter(e, name, args));
            }
            return e;
        }

        private Expr Postfix(Expr e)
        {
            while (true)
            {
                if (lx.Accept(".")) e = new Attr(e, lx.ExpectName());
                else if (lx.Accept("["))
                {
                    Expr? start = lx.PeekIs(":") ? null : Expression(true);
                    if (lx.Accept(":"))
                    {
                        Expr? stop = lx.PeekIs("]") ? null : Expression(true);
                        if (lx.PeekIs(":")) throw new ChatTemplateException("slices with a step ([a:b:c]) are not supported");
                        e = new SliceExpr(e, start, stop);
                    }
                    else e = new Index(e, start!);
                    lx.Expect("]");
                }
                else if (lx.Accept("("))
                {
                    string callee = e switch { Name n => n.Id, Attr a => "." + a.Key, _ => "an expression" };
                    if (!(e is Name { Id: "raise_exception" } || e is Attr a2 && Methods.Contains(a2.Key)))
                        throw new ChatTemplateException($"calling {callee}(…) is not supported (callable: raise_exception, and the string methods {string.Join(", ", Methods)})");
                    e = new Call(e, Arguments());
                }
                else return e;
            }
        }

        private List<Expr> Arguments()
        {
            var args = new List<Expr>();
            if (lx.Accept(")")) return args;
            do
            {
                if (lx.Peek is string s && IsIdentifier(s) && lx.PeekIs("=", 1)) throw new ChatTemplateException($"keyword arguments ({s}=…) are not supported");
                args.Add(Expression(true));
            } while (lx.Accept(","));
            lx.Expect(")");
            return args;
        }

        /// <summary>namespace(name=value, …): keyword arguments only.</summary>
        private Expr Namespace()
        {
            lx.Expect("(");
            var fields = new List<(string, Expr)>();
            if (lx.Accept(")")) return new NamespaceExpr(fields);
            do
            {
                if (!(lx.Peek is string s && IsIdentifier(s) && lx.PeekIs("=", 1))) throw new ChatTemplateException("namespace(…) takes keyword arguments only (namespace(found=false))");
                var name = lx.ExpectName();
                lx.Expect("=");
                fields.Add((name, Expression(true)));
            } while (lx.Accept(","));
            lx.Expect(")");
            return new NamespaceExpr(fields);
        }

        private Expr Primary()
        {
            var t = lx.Next();
            if (t is Literal lit) return lit;
            var s = (string)t;
            if (s == "(") { var e = Expression(true); lx.Expect(")"); return e; }
            if (s == "[")
            {
                var items = new List<Expr>();
                if (!lx.Accept("]")) { do items.Add(Expression(true)); while (lx.Accept(",")); lx.Expect("]"); }
                return new ListExpr(items);
            }
            if (s == "{") throw new ChatTemplateException("dict literals ({…}) are not supported");
            if (!IsIdentifier(s)) throw new ChatTemplateException($"unexpected '{s}'");
            return s switch
            {
                "true" or "True" => new Literal(true),
                "false" or "False" => new Literal(false),
                "none" or "None" => new Literal(null),
                "namespace" => Namespace(),
                "range" or "dict" or "cycler" or "joiner" or "lipsum" => throw new ChatTemplateException($"{s}() is not supported"),
                _ => new Name(s),
            };
        }
    }

    // ---- rendering ----

    /// <summary>A namespace(): attributes that {% set ns.x = … %} changes from inside a loop (a plain set there is local to the loop).</summary>
    private sealed class Namespace { public readonly Dictionary<string, object?> Fields = []; }

    /// <summary>What a missing variable, key or attribute is: renders as nothing, is false, fails when used further.</summary>
    private sealed class Undefined(string what) { public string What { get; } = what; }

    private sealed class Context(IReadOnlyDictionary<string, object?> globals)
    {
        public readonly StringBuilder Output = new();
        public readonly List<Dictionary<string, object?>> Scopes = [new()];

        public object? Lookup(string name)
        {
            for (int i = Scopes.Count - 1; i >= 0; i--) if (Scopes[i].TryGetValue(name, out var v)) return v;
            return globals.TryGetValue(name, out var g) ? g : new Undefined(name);
        }

        public void Write(string s)
        {
            if (Output.Length + s.Length > MaxOutputChars) throw new ChatTemplateException($"the rendered prompt is longer than {MaxOutputChars} characters");
            Output.Append(s);
        }
    }

    private static void Exec(List<Node> nodes, Context ctx)
    {
        foreach (var node in nodes)
            switch (node)
            {
                case TextNode t: ctx.Write(t.Text); break;
                case OutputNode o: ctx.Write(Str(Eval(o.Value, ctx))); break;
                case SetNode { Attribute: null } s: ctx.Scopes[^1][s.Name] = Eval(s.Value, ctx); break;
                case SetNode s:
                    if (ctx.Lookup(s.Name) is not Namespace ns) throw new ChatTemplateException($"cannot set {s.Name}.{s.Attribute}: {s.Name} is not a namespace()");
                    ns.Fields[s.Attribute!] = Eval(s.Value, ctx);
                    break;
                case IfNode i:
                    var branch = i.Branches.FirstOrDefault(b => Truthy(Eval(b.Condition, ctx))).Body ?? i.Else;
                    if (branch is not null) Exec(branch, ctx);
                    break;
                case ForNode f:
                    var items = Eval(f.Items, ctx) switch
                    {
                        List<object?> l => l,
                        string str => str.Select(c => (object?)c.ToString()).ToList(),
                        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
                        Undefined => [],
                        var other => throw new ChatTemplateException($"cannot loop over {TypeName(other)}"),
                    };
                    for (int n = 0; n < items.Count; n++)
                    {
                        var scope = new Dictionary<string, object?>
                        {
                            ["loop"] = new Dictionary<string, object?>
                            {
                                ["index"] = (long)n + 1, ["index0"] = (long)n, ["first"] = n == 0, ["last"] = n == items.Count - 1,
                                ["length"] = (long)items.Count, ["revindex"] = (long)(items.Count - n), ["revindex0"] = (long)(items.Count - n - 1),
                            },
                        };
                        if (f.Targets.Length == 1) scope[f.Targets[0]] = items[n];
                        else if (items[n] is List<object?> tuple && tuple.Count == f.Targets.Length)
                            for (int k = 0; k < tuple.Count; k++) scope[f.Targets[k]] = tuple[k];
                        else throw new ChatTemplateException($"cannot unpack {TypeName(items[n])} into {f.Targets.Length} names");
                        ctx.Scopes.Add(scope);
                        try { Exec(f.Body, ctx); }
                        finally { ctx.Scopes.RemoveAt(ctx.Scopes.Count - 1); }
                    }
                    break;
            }
    }

    private static object? Eval(Expr e, Context ctx)
    {
        switch (e)
        {
            case Literal l: return l.Value;
            case Name n: return ctx.Lookup(n.Id);
            case ListExpr l: return l.Items.Select(x => Eval(x, ctx)).ToList();
            case Attr a: return Member(Eval(a.Target, ctx), a.Key);
            case Index i: return Member(Eval(i.Target, ctx), Eval(i.Key, ctx));
            case SliceExpr s:
            {
                var target = Eval(s.Target, ctx);
                long? start = s.Start is null ? null : Integer(Eval(s.Start, ctx), "a slice bound");
                long? stop = s.Stop is null ? null : Integer(Eval(s.Stop, ctx), "a slice bound");
                return target switch
                {
                    List<object?> list => Slice(list.Count, start, stop) is var (a, b) ? list.GetRange(a, b - a) : null,
                    string str => Slice(str.Length, start, stop) is var (c, d) ? str[c..d] : null,
                    var other => throw new ChatTemplateException($"cannot slice {TypeName(other)}"),
                };
            }
            case Call c: return Invoke(c, ctx);
            case NamespaceExpr n:
            {
                var ns = new Namespace();
                foreach (var (name, value) in n.Fields) ns.Fields[name] = Eval(value, ctx);
                return ns;
            }
            case Unary { Op: "not" } u: return !Truthy(Eval(u.Operand, ctx));
            case Unary u:
                return Eval(u.Operand, ctx) switch { long x => (object)(-x), double x => -x, var other => throw new ChatTemplateException($"cannot negate {TypeName(other)}") };
            case Binary { Op: "and" } b: { var l = Eval(b.Left, ctx); return Truthy(l) ? Eval(b.Right, ctx) : l; }
            case Binary { Op: "or" } b: { var l = Eval(b.Left, ctx); return Truthy(l) ? l : Eval(b.Right, ctx); }
            case Binary b: return Apply(b.Op, Eval(b.Left, ctx), Eval(b.Right, ctx));
            case Test t: return t.Negated != Is(t.Name, Eval(t.Operand, ctx));
            case Filter f: return ApplyFilter(f.Name, Eval(f.Operand, ctx), f.Args.Select(x => Eval(x, ctx)).ToList());
            case Conditional c: return Truthy(Eval(c.Condition, ctx)) ? Eval(c.Then, ctx) : c.Else is null ? new Undefined("an if without else") : Eval(c.Else, ctx);
            default: throw new InvalidOperationException(e.GetType().Name);
        }
    }

    private static (int, int) Slice(int count, long? start, long? stop)
    {
        long a = start ?? 0, b = stop ?? count;
        if (a < 0) a += count;
        if (b < 0) b += count;
        a = Math.Clamp(a, 0, count);
        b = Math.Clamp(b, a, count);
        return ((int)a, (int)b);
    }

    private static object? Member(object? target, object? key) => target switch
    {
        Dictionary<string, object?> d => key is string k && d.TryGetValue(k, out var v) ? v : new Undefined($"key {Repr(key)}"),
        Namespace ns => key is string k && ns.Fields.TryGetValue(k, out var v) ? v : new Undefined($"namespace attribute {Repr(key)}"),
        List<object?> l when key is long i => (i < 0 ? i + l.Count : i) is var j && j >= 0 && j < l.Count ? l[(int)j] : new Undefined($"index {i}"),
        string s when key is long i => (i < 0 ? i + s.Length : i) is var j && j >= 0 && j < s.Length ? s[(int)j].ToString() : new Undefined($"index {i}"),
        Undefined u => throw new ChatTemplateException($"{u.What} is undefined, so it has no {Repr(key)}"),
        _ => new Undefined($"{Repr(key)} of {TypeName(target)}"),
    };

    private static object? Invoke(Call c, Context ctx)
    {
        var args = c.Args.Select(x => Eval(x, ctx)).ToList();
        if (c.Target is Name { Id: "raise_exception" }) throw new ChatTemplateException(args.Count > 0 ? Str(args[0]) : "the chat template raised an exception");
        var method = ((Attr)c.Target).Key;
        if (Eval(((Attr)c.Target).Target, ctx) is not string s) throw new ChatTemplateException($".{method}() needs a string");
        string Arg(int i) => args.Count > i && args[i] is string a ? a : throw new ChatTemplateException($".{method}() needs a string argument");
        return method switch
        {
            "strip" => args.Count > 0 ? s.Trim(Arg(0).ToCharArray()) : s.Trim(),
            "lstrip" => args.Count > 0 ? s.TrimStart(Arg(0).ToCharArray()) : s.TrimStart(),
            "rstrip" => args.Count > 0 ? s.TrimEnd(Arg(0).ToCharArray()) : s.TrimEnd(),
            "startswith" => s.StartsWith(Arg(0), StringComparison.Ordinal),
            "endswith" => s.EndsWith(Arg(0), StringComparison.Ordinal),
            "lower" => s.ToLowerInvariant(),
            "upper" => s.ToUpperInvariant(),
            _ => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant()),
        };
    }

    private static object? Apply(string op, object? l, object? r)
    {
        switch (op)
        {
            case "==": return Equal(l, r);
            case "!=": return !Equal(l, r);
            case "~": return Concat(Str(l), Str(r));
            case "in":
                return r switch
                {
                    string s when l is string sub => s.Contains(sub, StringComparison.Ordinal),
                    List<object?> list => list.Any(x => Equal(x, l)),
                    Dictionary<string, object?> d => l is string k && d.ContainsKey(k),
                    _ => throw new ChatTemplateException($"'in' needs a string, list or mapping on its right, got {TypeName(r)}"),
                };
            case "+" when l is string a && r is string b: return Concat(a, b);
            case "+" when l is List<object?> a && r is List<object?> b:
                return (long)a.Count + b.Count <= MaxOutputChars ? a.Concat(b).ToList()
                    : throw new ChatTemplateException($"the template builds a list longer than {MaxOutputChars} items");
            case "<" or "<=" or ">" or ">=" when l is string a && r is string b:
                int c = string.CompareOrdinal(a, b);
                return op switch { "<" => c < 0, "<=" => c <= 0, ">" => c > 0, _ => c >= 0 };
        }
        if (!IsNumber(l) || !IsNumber(r)) throw new ChatTemplateException($"'{op}' cannot combine {TypeName(l)} and {TypeName(r)}");
        if (l is long x && r is long y)
            return op switch
            {
                "+" => x + y, "-" => x - y, "*" => x * y, "/" => y == 0 ? throw DivZero() : (double)x / y,
                "//" => y == 0 ? throw DivZero() : (long)Math.Floor((double)x / y), "%" => y == 0 ? throw DivZero() : ((x % y) + y) % y,
                "<" => x < y, "<=" => x <= y, ">" => x > y, _ => x >= y,
            };
        double p = Convert.ToDouble(l, CultureInfo.InvariantCulture), q = Convert.ToDouble(r, CultureInfo.InvariantCulture);
        return op switch
        {
            "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q, "//" => Math.Floor(p / q), "%" => p - q * Math.Floor(p / q),
            "<" => p < q, "<=" => p <= q, ">" => p > q, _ => p >= q,
        };
    }

    private static ChatTemplateException DivZero() => new("division by zero");

    private static object? ApplyFilter(string name, object? v, List<object?> args) => name switch
    {
        "trim" => Str(v).Trim(),
        "lower" => Str(v).ToLowerInvariant(),
        "upper" => Str(v).ToUpperInvariant(),
        "string" => Str(v),
        "length" or "count" => v switch
        {
            string s => (long)s.Length, List<object?> l => (long)l.Count, Dictionary<string, object?> d => (long)d.Count,
            _ => throw new ChatTemplateException($"|{name} needs a string, list or mapping, got {TypeName(v)}"),
        },
        "join" => v switch
        {
            List<object?> l => Join(args.Count > 0 ? Str(args[0]) : "", [.. l.Select(Str)]),
            string s => Join(args.Count > 0 ? Str(args[0]) : "", [.. s.Select(c => c.ToString())]),
            _ => throw new ChatTemplateException($"|join needs a list or a string, got {TypeName(v)}"),
        },
        "first" => v is List<object?> { Count: > 0 } l ? l[0] : v is string { Length: > 0 } s ? s[..1] : new Undefined("the first item"),
        "last" => v is List<object?> { Count: > 0 } l ? l[^1] : v is string { Length: > 0 } s ? s[^1..] : new Undefined("the last item"),
        _ => v is Undefined || (args.Count > 1 && Truthy(args[1]) && !Truthy(v)) ? (args.Count > 0 ? args[0] : "") : v,   // default / d
    };

    private static bool Is(string test, object? v) => test switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?>,
        "iterable" => v is string or List<object?> or Dictionary<string, object?>,
        "sequence" => v is string or List<object?>,
        "even" => Integer(v, "'is even'") % 2 == 0,
        _ => Integer(v, "'is odd'") % 2 != 0,
    };

    private static long Integer(object? v, string what) => v is long l ? l : throw new ChatTemplateException($"{what} needs an integer, got {TypeName(v)}");
    private static bool IsNumber(object? v) => v is long or double or bool;

    private static bool Equal(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (string x, string y) => x == y,
        (long or double, long or double) => Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture),
        (bool x, bool y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equal(p.First, p.Second)),
        _ => false,
    };

    private static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    /// <summary>How Jinja (Python) prints a value.</summary>
    private static string Str(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d == Math.Floor(d) && Math.Abs(d) < 1e16 ? d.ToString("0.0", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture),
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(p => Repr(p.Key) + ": " + Repr(p.Value))) + "}",
        _ => v.ToString() ?? "",
    };

    private static string Repr(object? v) => v is string s ? "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'" : Str(v);

    private static string TypeName(object? v) => v switch
    {
        null => "none", Undefined u => $"undefined ({u.What})", string => "a string", long => "an integer", double => "a float", bool => "a boolean",
        List<object?> => "a list", Dictionary<string, object?> => "a mapping", Namespace => "a namespace", _ => v.GetType().Name,
    };
}
