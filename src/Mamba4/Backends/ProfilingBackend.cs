using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace Mamba4.Backends;

/// <summary>
/// Wraps a backend and times every kernel call by method name (a DispatchProxy: no per-method code).
/// Enable with <see cref="Backend.EnableProfiling"/>; read with <see cref="Report"/>. The proxy implements the optional
/// capabilities (<see cref="IGruBackend"/>, <see cref="IMambaStepBackend"/>) that the wrapped backend implements, so a
/// profiled model takes the same paths (the fused decoding step) as an unprofiled one.
/// </summary>
public class ProfilingBackend : DispatchProxy
{
    private IBackend _inner = null!;
    internal IBackend Inner => _inner;
    /// <summary>Per kernel: calls, time, and the bytes of its tensor arguments.</summary>
    private static readonly ConcurrentDictionary<string, (long Calls, long Ticks, long Bytes)> Totals = new();

    /// <summary>Both optional capabilities (a DispatchProxy implements one interface).</summary>
    public interface IGruAndMambaStepBackend : IGruBackend, IMambaStepBackend;

    public static IBackend Wrap(IBackend inner)
    {
        var proxy = inner switch
        {
            IGruBackend and IMambaStepBackend => Create<IGruAndMambaStepBackend, ProfilingBackend>(),
            IGruBackend => Create<IGruBackend, ProfilingBackend>(),
            IMambaStepBackend => Create<IMambaStepBackend, ProfilingBackend>(),
            _ => Create<IBackend, ProfilingBackend>(),
        };
        ((ProfilingBackend)(object)proxy)._inner = inner;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? method, object?[]? args)
    {
        long t0 = Stopwatch.GetTimestamp();
        object? result = null;
        try
        {
            return result = method!.Invoke(_inner, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
        finally
        {
            long dt = Stopwatch.GetTimestamp() - t0;
            // not the properties, nor a query that did nothing (ProductOperand's null: no operand to round on this backend)
            if (method!.Name is not ("get_Device" or "get_Name") && (result is not null || method.ReturnType == typeof(void)))
            {
                long bytes = 0;
                foreach (var a in args ?? [])
                    if (a is Tensor t) bytes += t.ByteLength;
                Totals.AddOrUpdate(method.Name, (1, dt, bytes), (_, v) => (v.Calls + 1, v.Ticks + dt, v.Bytes + bytes));
            }
        }
    }

    public static void Reset() => Totals.Clear();

    /// <summary>Kernel name, calls and the bytes of its tensor arguments summed over the calls (each read or written once:
    /// what a memory-bound kernel moves; tensors inside argument structs, as the scan's, are not counted) — largest first.</summary>
    public static IReadOnlyList<(string Kernel, long Calls, long Bytes)> Traffic() =>
        Totals.Select(kv => (kv.Key, kv.Value.Calls, kv.Value.Bytes)).OrderByDescending(r => r.Item3).ToList();

    /// <summary>Kernel name, calls, total seconds — largest first.</summary>
    public static IReadOnlyList<(string Kernel, long Calls, double Seconds)> Report() =>
        Totals.Select(kv => (kv.Key, kv.Value.Calls, kv.Value.Ticks / (double)Stopwatch.Frequency)).OrderByDescending(r => r.Item3).ToList();
}
