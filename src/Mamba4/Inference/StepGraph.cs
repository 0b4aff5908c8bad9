using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Inference;

/// <summary>
/// <see cref="MambaLM.Step(Tensor, MambaState)"/> for a model on a CUDA GPU, captured once as a CUDA graph and replayed per token: the
/// ~150–270 kernel launches of a decoding step become one graph launch. The graph reads the token ids from a fixed
/// device buffer and writes the logits to a fixed device tensor; the state is updated in place as by Step (so the
/// graph is bound to that state). Set MAMBA4_CUDA_GRAPH=0 to decode without graphs.
/// </summary>
public sealed class StepGraph : IDisposable
{
    private readonly MambaState _state;
    private readonly Tensor _ids, _logits;
    private readonly CudaGraph _graph;

    public static bool Enabled => Backends.Backend.Settings.CudaGraph;

    private StepGraph(MambaLM model, MambaState state, int batch, CudaBackend gpu)
    {
        _state = state;
        _ids = Tensor.Zeros(new Shape(batch), DType.I64, model.LmHead.Device).Persist();
        using (GradMode.NoGrad())
        {
            Tensor? logits = null;
            long position = state.Position;
            GreedyOnDevice = model.UsesFusedStep;
            // Capturing records the step without running it: the state is untouched, its position restored. With the fused
            // head, the step's arg-max goes back into the ids it read: the next greedy step needs no upload.
            _graph = gpu.Capture(() =>
            {
                using var scope = new TensorScope();
                logits = model.Step(_ids, state, GreedyOnDevice ? _ids : null).Persist();
            });
            state.Position = position;
            _logits = logits!;
        }
        Batch = batch;
    }

    public int Batch { get; }

    /// <summary>Whether each replay also leaves every stream's arg-max on the device (<see cref="StepGreedy"/>).</summary>
    public bool GreedyOnDevice { get; }

    /// <summary>The logits [batch, vocab] of the last replay (device tensor, valid until the next call).</summary>
    public Tensor Logits => _logits;

    /// <summary>Kernels one replay runs (cuBLAS GEMMs not counted).</summary>
    public long Kernels => _graph.Kernels;

    /// <summary>
    /// The graph of <paramref name="model"/>'s step for <paramref name="state"/> (<paramref name="batch"/> streams), or null
    /// when the model is not on a CUDA GPU or graphs are disabled. Call after one ordinary step (kernels compiled, cuBLAS
    /// ready).
    /// </summary>
    public static StepGraph? TryCreate(MambaLM model, MambaState state, int batch)
    {
        if (!Enabled || Backend.For(model.LmHead.Device) is not CudaBackend gpu) return null;
        return new StepGraph(model, state, batch, gpu);
    }

    /// <summary>One step of every stream: <paramref name="tokens"/> (one per stream) in, logits [batch, vocab] out (device tensor, valid until the next call).</summary>
    public Tensor Step(ReadOnlySpan<long> tokens)
    {
        Upload(tokens);
        _graph.Launch();
        _state.Position++;
        return _logits;
    }

    /// <summary>
    /// One greedy step (<see cref="GreedyOnDevice"/>): <paramref name="tokens"/> in, each stream's arg-max out — 8 bytes a
    /// stream cross to the host instead of the logits; −1 for a stream whose logits hold NaN or ±∞ (read
    /// <see cref="Logits"/> to name it). Tokens equal to the ids the last replay chose are already on the device.
    /// </summary>
    public long[] StepGreedy(ReadOnlySpan<long> tokens)
    {
        if (!GreedyOnDevice) throw new InvalidOperationException("StepGreedy: this graph's step does not compute the arg-max on the device");
        if (_chosen is null || !tokens.SequenceEqual(_chosen)) Upload(tokens);
        _graph.Launch();
        _state.Position++;
        return _chosen = _ids.ToInt64Array();
    }

    private long[]? _chosen;

    private void Upload(ReadOnlySpan<long> tokens)
    {
        if (tokens.Length != Batch) throw new ArgumentException($"StepGraph: {tokens.Length} tokens for {Batch} streams");
        using (var host = Tensor.From(tokens.ToArray(), Batch)) _ids.CopyFrom(host);
        _chosen = null;
    }

    public void Dispose()
    {
        _graph.Dispose();
        _logits.Dispose();
        _ids.Dispose();
    }
}
