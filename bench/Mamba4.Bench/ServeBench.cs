using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Mamba4.Bench;

/// <summary>
/// `mamba4 serve` under load on loopback: a mamba-130m-shaped model (random weights) on a real Kestrel
/// socket; 1, 8, 32 concurrent greedy streaming completions. Aggregate tokens/s, time to first token and
/// inter-token latency (p50/p99, measured by the client), resident memory before and after. Bounded: a
/// fixed number of tokens per stream (MAMBA4_SERVE_TOKENS, default 128) and a 120 s cap per level.
/// Continuous batching should make 32 streams ≥ 6× one stream: each batched step reads the weights once.
/// MAMBA4_SERVE_LEVELS (default 1,8,32,128; a level may repeat, e.g. 1,32,1,32: each ratio is to the last single stream), MAMBA4_SERVE_STEPS=0 skips the step table, MAMBA4_SERVE_STEPS_ONLY=1 prints only it.
/// MAMBA4_DEVICE=cuda serves from the GPU (`serve --device cuda`): the step table then times the batched step with its
/// logits copied to the host (what the server does per step), and each level also reports the device memory in use.
/// </summary>
public static class ServeBench
{
    public static void Run() => RunAsync().GetAwaiter().GetResult();

    /// <summary>MAMBA4_SERVE_SAMPLE=1: streams sample (temperature 0.8, top-p 0.95) instead of greedy decoding.</summary>
    private static readonly bool Sample = BenchSettings.Current.ServeSample;

    private static async Task RunAsync()
    {
        if (!BenchSettings.Current.UsableDevice("serve", out var device)) return;
        Console.WriteLine($"== serve ({device}): continuous batching over HTTP (loopback, SSE), 130m shape, {(Sample ? "sampling (temperature 0.8, top-p 0.95)" : "greedy")}");
        int tokens = BenchSettings.Current.ServeTokens;
        int[] levels = BenchSettings.Current.ServeLevels;
        var config = new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 };
        var model = new MambaLM(config, seed: 1);
        model.Eval();
        if (!device.IsCpu) model.To(device);
        if (BenchSettings.Current.ServeSteps)
        {
            if (device.IsCpu) StepTimes(model, levels.Max());
            else DeviceStepTimes(model, levels.Max());
        }
        if (BenchSettings.Current.ServeStepsOnly) { model.Dispose(); return; }
        var options = new ServerOptions { ModelDir = "mamba-130m-shape", Port = 0, MaxStreams = levels.Max(), MaxQueue = 0, Log = false, Device = device.ToString() };
        await using var app = MambaServer.Build(options, null, model);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
        Console.WriteLine($"{model.ParameterCount:N0} parameters; server {address}; {tokens} tokens per stream; batched state {options.MaxStreams} slots");

        await Level(client, 2, 8, device);   // warm-up: JIT, pools, connections, kernels
        double single = 0;
        var serverMetrics = app.Services.GetRequiredService<ServerMetrics>();
        foreach (int c in levels)
        {
            GC.Collect();
            var (step0, itl0) = (serverMetrics.StepTime.Totals, serverMetrics.InterToken.Totals);
            int gc0 = GC.CollectionCount(0), gc2 = GC.CollectionCount(2);
            var r = await Level(client, c, tokens, device);
            var (step1, itl1) = (serverMetrics.StepTime.Totals, serverMetrics.InterToken.Totals);
            if (c == 1) single = r.TokensPerSecond;
            Console.WriteLine($"{c,3} streams: {r.TokensPerSecond,7:F1} tokens/s aggregate{(single > 0 && c > 1 ? $" ({r.TokensPerSecond / single:F1}× one stream)" : "")}; " +
                $"TTFT p50 {r.Ttft50 * 1000:F0} ms p99 {r.Ttft99 * 1000:F0} ms; inter-token p50 {r.Itl50 * 1000:F0} ms p99 {r.Itl99 * 1000:F0} ms; " +
                $"{r.Tokens} tokens in {r.Seconds:F1} s; RSS at the {tokens / 8}th token {r.RssEarly / 1e6:F0} MB, at the last {r.RssLate / 1e6:F0} MB" +
                (device.IsCpu ? "" : $"; {device} memory in use at the {tokens / 8}th token {r.DeviceEarly / 1e6:F0} MB, at the last {r.DeviceLate / 1e6:F0} MB"));
            Console.WriteLine($"     server side: batched step mean {(step1.Sum - step0.Sum) / Math.Max(1, step1.Count - step0.Count) * 1000:F1} ms over {step1.Count - step0.Count} steps; " +
                $"inter-token mean {(itl1.Sum - itl0.Sum) / Math.Max(1, itl1.Count - itl0.Count) * 1000:F1} ms; GCs gen0 {GC.CollectionCount(0) - gc0}, gen2 {GC.CollectionCount(2) - gc2}");
        }
        var metrics = (await client.GetStringAsync("/metrics")).Replace("{} ", " ");   // OpenTelemetry's exporter: name{} value
        var steps = metrics.Split('\n').FirstOrDefault(l => l.StartsWith("mamba4_decode_steps_total ", StringComparison.Ordinal));
        var generated = metrics.Split('\n').FirstOrDefault(l => l.StartsWith("mamba4_generated_tokens_total ", StringComparison.Ordinal));
        Console.WriteLine($"server: {steps}; {generated}");
        await app.StopAsync();
        Console.WriteLine();
    }

    /// <summary>
    /// The batched step alone (no HTTP): ms per step and tokens/s by batch size, few-row products on the
    /// streaming kernel vs the packed GEMM; the best of 3 rounds of 4 steps (robust to a busy machine).
    /// </summary>
    private static void StepTimes(MambaLM model, int maxBatch)
    {
        int saved = Mamba4.Backends.Cpu.CpuGemv.MaxRows;
        bool wide = Mamba4.Backends.Cpu.CpuGemv.WideSupported, tile = Mamba4.Backends.Cpu.CpuGemv.Tile4x3Supported;
        var engine = Mamba4.Backends.Backend.Settings;
        var kernels = new List<(string Label, int Rows, Mamba4.Backends.CpuGemvTiles Tiles)> { ("streaming", saved, Mamba4.Backends.CpuGemvTiles.Auto) };
        if (tile) kernels.Add(("streaming 3×2", saved, Mamba4.Backends.CpuGemvTiles.Up3x2));
        if (wide) kernels.Add(("streaming 3×1", saved, Mamba4.Backends.CpuGemvTiles.Rows));
        kernels.Add(("packed GEMM", Math.Min(4, saved), Mamba4.Backends.CpuGemvTiles.Auto));
        foreach (int b in new[] { 1, 4, 8, 16, 32, 64 }.Where(b => b <= Math.Max(4, maxBatch)))
        {
            var configs = b <= 4 ? kernels.Take(1).ToList() : kernels;
            var best = configs.ToDictionary(c => c.Label, _ => double.MaxValue);
            using var state = model.NewState(b);
            using var _ = Mamba4.Autograd.GradMode.NoGrad();
            var ids = Enumerable.Range(0, b).Select(i => (long)(i * 31 % 50280)).ToArray();
            for (int round = 0; round < 3; round++)
                foreach (var (label, rows, tiles) in configs)
                {
                    Mamba4.Backends.Cpu.CpuGemv.MaxRows = rows;
                    Mamba4.Backends.Backend.Configure(engine with { CpuGemvTiles = tiles });
                    using (var scope = new Mamba4.Tensors.TensorScope()) model.Step(Mamba4.Tensors.Tensor.From(ids, b), state);
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < 4; i++) using (var scope = new Mamba4.Tensors.TensorScope()) model.Step(Mamba4.Tensors.Tensor.From(ids, b), state);
                    best[label] = Math.Min(best[label], sw.Elapsed.TotalMilliseconds / 4);
                }
            var line = new StringBuilder($"step batch {b,2}:");
            foreach (var (label, ms) in best) line.Append($"  {label} {ms,6:F1} ms ({b * 1000 / ms,6:F1} tokens/s)");
            Console.WriteLine(line);
        }
        Mamba4.Backends.Cpu.CpuGemv.MaxRows = saved;
        Mamba4.Backends.Backend.Configure(engine);
    }

    /// <summary>
    /// The batched step on the GPU alone (no HTTP): ms per step and tokens/s by batch size, each step's logits copied to
    /// the host as the server copies them (which also waits for the step's kernels); the best of 3 rounds of 8 steps.
    /// </summary>
    private static void DeviceStepTimes(MambaLM model, int maxBatch)
    {
        var host = new float[maxBatch * model.Config.VocabSize];
        foreach (int b in new[] { 1, 4, 8, 16, 32, 64, 128 }.Where(b => b <= Math.Max(4, maxBatch)))
        {
            using var state = model.NewState(b);
            using var _ = Mamba4.Autograd.GradMode.NoGrad();
            var ids = Enumerable.Range(0, b).Select(i => (long)(i * 31 % 50280)).ToArray();
            void Step()
            {
                using var scope = new Mamba4.Tensors.TensorScope();
                var logits = model.Step(Mamba4.Tensors.Tensor.From(ids, b), state);
                unsafe { fixed (float* p = host) Backend.Memory(logits.Device).CopyToHost(logits, (nint)p, logits.ByteLength); }
            }
            Step();
            double best = double.MaxValue;
            for (int round = 0; round < 3; round++)
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < 8; i++) Step();
                best = Math.Min(best, sw.Elapsed.TotalMilliseconds / 8);
            }
            Console.WriteLine($"step batch {b,3}: {best,6:F2} ms ({b * 1000 / best,8:F1} tokens/s), logits to the host included");
        }
    }

    private sealed record Result(double TokensPerSecond, int Tokens, double Seconds, double Ttft50, double Ttft99, double Itl50, double Itl99, long RssEarly, long RssLate, long DeviceEarly, long DeviceLate);

    private static async Task<Result> Level(HttpClient client, int streams, int tokens, Device device)
    {
        var ttft = new List<double>();
        var itl = new List<double>();
        int total = 0;
        long rssEarly = 0, deviceEarly = 0, deviceLate = 0;
        using var cap = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, streams).Select(async i =>
        {
            var rng = new Random(i);
            var prompt = Enumerable.Range(0, 8).Select(_ => rng.Next(50280)).ToArray();
            var body = Sample
                ? JsonSerializer.Serialize(new { prompt, max_tokens = tokens, temperature = 0.8, top_p = 0.95, seed = i, stream = true })
                : JsonSerializer.Serialize(new { prompt, max_tokens = tokens, temperature = 0, stream = true });
            long start = Stopwatch.GetTimestamp(), last = 0;
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cap.Token);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cap.Token));
            int n = 0;
            while (await reader.ReadLineAsync(cap.Token) is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
                long now = Stopwatch.GetTimestamp();
                lock (ttft)
                {
                    if (n == 0) ttft.Add(Stopwatch.GetElapsedTime(start, now).TotalSeconds);
                    else itl.Add(Stopwatch.GetElapsedTime(last, now).TotalSeconds);
                }
                last = now;
                n++;
                if (i == 0 && n == Math.Max(1, tokens / 8))
                {
                    rssEarly = Process.GetCurrentProcess().WorkingSet64;
                    if (!device.IsCpu) deviceEarly = Backend.BytesInUse(device);
                }
                if (i == 0 && n == tokens - 1 && !device.IsCpu) deviceLate = Backend.BytesInUse(device);   // all streams still decoding
            }
            Interlocked.Add(ref total, n);
        }));
        double seconds = sw.Elapsed.TotalSeconds;
        long rssLate = Process.GetCurrentProcess().WorkingSet64;
        if (deviceLate == 0 && !device.IsCpu) deviceLate = Backend.BytesInUse(device);
        return new Result(total / seconds, total, seconds, Q(ttft, 0.5), Q(ttft, 0.99), Q(itl, 0.5), Q(itl, 0.99), rssEarly, rssLate, deviceEarly, deviceLate);
    }

    private static double Q(List<double> v, double q)
    {
        if (v.Count == 0) return double.NaN;
        var s = v.Order().ToArray();
        return s[Math.Clamp((int)Math.Ceiling(q * s.Length) - 1, 0, s.Length - 1)];
    }
}
