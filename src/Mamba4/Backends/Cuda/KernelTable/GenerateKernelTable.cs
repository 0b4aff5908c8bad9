// MSBuild task (compiled by RoslynCodeTaskFactory, see Mamba4.csproj; not part of the library): reads Kernels/*.cu and
// writes KernelTable.g.cs, a C# class per kernel file holding its name and one constant per `extern "C" __global__`
// kernel, with the kernels that macros define expanded (function-like #defines of the file, `##` pasting), plus the set
// of every kernel name per file and, for a file that splits its instantiations in compile groups (`#if
// KERNEL_GROUP_IS(g)` … `#endif`, common.cuh), each kernel's group (0: outside every group, so in all of them). The CUDA
// backend launches by these constants, so a misspelt kernel fails the build; the names it composes at run time (the
// scan's variants) are checked against the set by a CPU test (KernelTableTests).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class GenerateKernelTable : Task
{
    [Required] public ITaskItem[] Sources { get; set; }
    [Required] public string Output { get; set; }

    private sealed class Macro
    {
        public string[] Parameters;
        public string Body;
    }

    private static readonly Regex Kernel = new Regex(
        @"extern\s+""C""\s+__global__\s+void\s+(?:__launch_bounds__\s*\((?:[^()]|\([^()]*\))*\)\s*)?([A-Za-z_]\w*)\s*\(", RegexOptions.Compiled);
    private static readonly Regex Define = new Regex(@"^\s*#\s*define\s+([A-Za-z_]\w*)\(([^)]*)\)(.*)$", RegexOptions.Compiled | RegexOptions.Singleline);

    public override bool Execute()
    {
        var files = new SortedDictionary<string, List<KeyValuePair<string, int>>>(StringComparer.Ordinal);
        foreach (var item in Sources)
        {
            string path = item.ItemSpec, file = Path.GetFileName(path);
            List<KeyValuePair<string, int>> names;
            try { names = KernelNames(File.ReadAllText(path)); }
            catch (Exception e) { Log.LogError("{0}: {1}", path, e.Message); return false; }
            var duplicate = names.GroupBy(n => n.Key).FirstOrDefault(g => g.Count() > 1);
            if (duplicate != null) { Log.LogError("{0}: kernel {1} is defined twice", path, duplicate.Key); return false; }
            if (names.Count == 0) { Log.LogError("{0}: no extern \"C\" __global__ kernel found", path); return false; }
            files[file] = names;
        }
        string text = Render(files);
        if (!File.Exists(Output) || File.ReadAllText(Output) != text)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(Output)));
            File.WriteAllText(Output, text);
        }
        return !Log.HasLoggedErrors;
    }

    private static readonly Regex GroupIf = new Regex(@"^\s*#\s*if\s+KERNEL_GROUP_IS\((\d+)\)\s*$", RegexOptions.Compiled);
    private static readonly Regex AnyIf = new Regex(@"^\s*#\s*if", RegexOptions.Compiled);
    private static readonly Regex EndIf = new Regex(@"^\s*#\s*endif", RegexOptions.Compiled);
    private static readonly Regex ElseOrElif = new Regex(@"^\s*#\s*(else|elif)", RegexOptions.Compiled);

    /// <summary>The kernels of one .cu file, in source order, with its function-like macros expanded, and their compile
    /// group (the innermost `#if KERNEL_GROUP_IS(g)` around the line that defines them; 0 outside every group).</summary>
    public static List<KeyValuePair<string, int>> KernelNames(string source)
    {
        string joined = Regex.Replace(source.Replace("\r\n", "\n"), @"\\\n", " ");
        joined = Regex.Replace(joined, @"/\*.*?\*/", " ", RegexOptions.Singleline);
        joined = Regex.Replace(joined, @"//[^\n]*", "");
        var macros = new Dictionary<string, Macro>(StringComparer.Ordinal);
        var segments = new List<KeyValuePair<int, StringBuilder>> { new KeyValuePair<int, StringBuilder>(0, new StringBuilder()) };
        var open = new Stack<int>();   // the group of each open #if (0 for a condition that is not a group)
        foreach (var line in joined.Split('\n'))
        {
            if (!line.TrimStart().StartsWith("#")) { segments[segments.Count - 1].Value.Append(line).Append('\n'); continue; }
            var g = GroupIf.Match(line);
            bool changed = false;
            // only the plain form is understood: anything else would label kernels wrongly without a word
            if (!g.Success && line.Contains("KERNEL_GROUP"))
                throw new InvalidOperationException("a compile group must be opened as `#if KERNEL_GROUP_IS(<digits>)` alone: " + line.Trim());
            if (ElseOrElif.IsMatch(line) && open.Any(o => o > 0))
                throw new InvalidOperationException("#else / #elif inside a compile group is not supported: " + line.Trim());
            if (g.Success) { open.Push(int.Parse(g.Groups[1].Value)); changed = true; }
            else if (AnyIf.IsMatch(line)) open.Push(open.Count > 0 ? open.Peek() : 0);
            else if (EndIf.IsMatch(line))
            {
                if (open.Count == 0) throw new InvalidOperationException("#endif without #if");
                open.Pop();
                changed = true;
            }
            if (changed) segments.Add(new KeyValuePair<int, StringBuilder>(open.Count > 0 ? open.Peek() : 0, new StringBuilder()));
            var m = Define.Match(line);
            if (m.Success)
                macros[m.Groups[1].Value] = new Macro
                {
                    Parameters = m.Groups[2].Value.Split(',').Select(p => p.Trim()).Where(p => p.Length > 0).ToArray(),
                    Body = m.Groups[3].Value,
                };
        }
        if (open.Count > 0) throw new InvalidOperationException("an #if is not closed by the end of the file");
        return segments.SelectMany(seg => Kernel.Matches(Expand(seg.Value.ToString(), macros, 0)).Cast<Match>()
            .Select(m => new KeyValuePair<string, int>(m.Groups[1].Value, seg.Key))).ToList();
    }

    private static string Expand(string text, Dictionary<string, Macro> macros, int depth)
    {
        if (depth > 32) throw new InvalidOperationException("macro expansion deeper than 32 levels");
        var output = new StringBuilder();
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '"')
            {
                int end = text.IndexOf('"', i + 1);
                if (end < 0) end = text.Length - 1;
                output.Append(text, i, end - i + 1);
                i = end + 1;
                continue;
            }
            if (!IsIdentifierStart(c)) { output.Append(c); i++; continue; }
            int start = i;
            while (i < text.Length && IsIdentifierPart(text[i])) i++;
            string word = text.Substring(start, i - start);
            Macro macro;
            int open = i;
            while (open < text.Length && char.IsWhiteSpace(text[open])) open++;
            if (!macros.TryGetValue(word, out macro) || open >= text.Length || text[open] != '(') { output.Append(word); continue; }
            int close;
            var args = Arguments(text, open, out close);
            if (args.Count == 1 && macro.Parameters.Length == 0 && args[0].Trim().Length == 0) args.Clear();
            if (args.Count != macro.Parameters.Length)
                throw new InvalidOperationException(string.Format("macro {0} takes {1} arguments, got {2}", word, macro.Parameters.Length, args.Count));
            output.Append(Expand(Substitute(macro, args), macros, depth + 1));
            i = close + 1;
        }
        return output.ToString();
    }

    /// <summary>The arguments of the invocation whose '(' is at <paramref name="open"/>; <paramref name="close"/> is its ')'.</summary>
    private static List<string> Arguments(string text, int open, out int close)
    {
        var args = new List<string>();
        int depth = 0, from = open + 1;
        for (int i = open; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '"') { int end = text.IndexOf('"', i + 1); i = end < 0 ? text.Length : end; continue; }
            if (c == '(') depth++;
            else if (c == ')' && --depth == 0)
            {
                args.Add(text.Substring(from, i - from));
                close = i;
                return args;
            }
            else if (c == ',' && depth == 1)
            {
                args.Add(text.Substring(from, i - from));
                from = i + 1;
            }
        }
        throw new InvalidOperationException("unbalanced parentheses in a macro invocation");
    }

    /// <summary>The macro body with parameters replaced by the (trimmed) arguments and `##` pasted.</summary>
    private static string Substitute(Macro macro, List<string> args)
    {
        var tokens = new List<string>();
        string body = macro.Body;
        int i = 0;
        while (i < body.Length)
        {
            int start = i;
            char c = body[i];
            if (IsIdentifierStart(c))
            {
                while (i < body.Length && IsIdentifierPart(body[i])) i++;
                string word = body.Substring(start, i - start);
                int p = Array.IndexOf(macro.Parameters, word);
                tokens.Add(p >= 0 ? args[p].Trim() : word);
            }
            else if (char.IsWhiteSpace(c))
            {
                while (i < body.Length && char.IsWhiteSpace(body[i])) i++;
                tokens.Add(" ");
            }
            else if (c == '#' && i + 1 < body.Length && body[i + 1] == '#') { tokens.Add("##"); i += 2; }
            else if (c == '"')
            {
                int end = body.IndexOf('"', i + 1);
                i = end < 0 ? body.Length : end + 1;
                tokens.Add(body.Substring(start, i - start));
            }
            else { tokens.Add(c.ToString()); i++; }
        }
        var pasted = new List<string>();
        for (int t = 0; t < tokens.Count; t++)
        {
            if (tokens[t] != "##") { pasted.Add(tokens[t]); continue; }
            while (pasted.Count > 0 && pasted[pasted.Count - 1] == " ") pasted.RemoveAt(pasted.Count - 1);
            int next = t + 1;
            while (next < tokens.Count && tokens[next] == " ") next++;
            string left = pasted.Count > 0 ? pasted[pasted.Count - 1] : "";
            if (pasted.Count > 0) pasted.RemoveAt(pasted.Count - 1);
            pasted.Add(left + (next < tokens.Count ? tokens[next] : ""));
            t = next;
        }
        return string.Concat(pasted);
    }

    private static bool IsIdentifierStart(char c) => c == '_' || char.IsLetter(c);
    private static bool IsIdentifierPart(char c) => c == '_' || char.IsLetterOrDigit(c);

    private static string Pascal(string snake) =>
        string.Concat(snake.Split(new[] { '_' }, StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1)));

    private static string Render(SortedDictionary<string, List<KeyValuePair<string, int>>> files)
    {
        var s = new StringBuilder();
        s.Append("// <auto-generated>\n");
        s.Append("// Written at build time by src/Mamba4/Backends/Cuda/KernelTable/GenerateKernelTable.cs from Kernels/*.cu; do not edit.\n");
        s.Append("// </auto-generated>\n");
        s.Append("namespace Mamba4.Backends.Cuda;\n\n");
        s.Append("/// <summary>The kernels of Kernels/*.cu: one class per file (its name and one constant per kernel), and every name per file.</summary>\n");
        s.Append("internal static class Kernels\n{\n");
        foreach (var file in files)
        {
            s.AppendFormat("    /// <summary>Kernels/{0}</summary>\n", file.Key);
            s.AppendFormat("    internal static class {0}\n    {{\n", Pascal(Path.GetFileNameWithoutExtension(file.Key)));
            s.AppendFormat("        public const string File = \"{0}\";\n", file.Key);
            foreach (var name in file.Value) s.AppendFormat("        public const string {0} = \"{1}\";\n", Pascal(name.Key), name.Key);
            s.Append("    }\n\n");
        }
        s.Append("    /// <summary>Every kernel name of every file (macro-defined ones expanded).</summary>\n");
        s.Append("    public static readonly global::System.Collections.Generic.IReadOnlyDictionary<string, global::System.Collections.Generic.IReadOnlySet<string>> ByFile =\n");
        s.Append("        new global::System.Collections.Generic.Dictionary<string, global::System.Collections.Generic.IReadOnlySet<string>>\n        {\n");
        foreach (var file in files)
            s.AppendFormat("            [\"{0}\"] = new global::System.Collections.Generic.HashSet<string> {{ {1} }},\n", file.Key,
                string.Join(", ", file.Value.Select(n => "\"" + n.Key + "\"")));
        s.Append("        };\n\n");
        s.Append("    /// <summary>The compile group of every kernel of each file that splits its instantiations in groups (#if\n");
        s.Append("    /// KERNEL_GROUP_IS(g), common.cuh; 0 = outside every group, in all of them); files without groups are absent.</summary>\n");
        s.Append("    public static readonly global::System.Collections.Generic.IReadOnlyDictionary<string, global::System.Collections.Generic.IReadOnlyDictionary<string, int>> Groups =\n");
        s.Append("        new global::System.Collections.Generic.Dictionary<string, global::System.Collections.Generic.IReadOnlyDictionary<string, int>>\n        {\n");
        foreach (var file in files.Where(f => f.Value.Any(n => n.Value > 0)))
            s.AppendFormat("            [\"{0}\"] = new global::System.Collections.Generic.Dictionary<string, int> {{ {1} }},\n", file.Key,
                string.Join(", ", file.Value.Select(n => "[\"" + n.Key + "\"] = " + n.Value)));
        s.Append("        };\n}\n");
        return s.ToString();
    }
}
