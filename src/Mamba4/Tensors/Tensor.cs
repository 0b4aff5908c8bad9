using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Ops;

namespace Mamba4.Tensors;

/// <summary>
/// A contiguous, row-major n-dimensional array on a device. Views (reshape, leading-axis slice)
/// share storage; every other transformation is an op that writes a new tensor.
/// A tensor created while a <see cref="TensorScope"/> is open belongs to that scope and is
/// disposed with it; tensors created outside any scope (parameters) live until disposed.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private Storage? _storage;

    internal Tensor(Storage storage, long byteOffset, Shape shape, DType dtype)
    {
        if (byteOffset + shape.NumElements * dtype.ElementSize() > storage.ByteLength)
            throw new ArgumentException($"a {dtype} tensor of shape {shape} at byte offset {byteOffset} does not fit in {storage.ByteLength} bytes");
        _storage = storage;
        ByteOffset = byteOffset;
        Shape = shape;
        DType = dtype;
        TensorScope.Track(this);
    }

    public Shape Shape { get; }
    public DType DType { get; private set; }
    public Device Device => Storage.Device;
    public int Rank => Shape.Rank;
    public long NumElements => Shape.NumElements;
    public long ByteLength => NumElements * DType.ElementSize();
    internal long ByteOffset { get; private set; }
    public Storage Storage => _storage ?? throw new ObjectDisposedException("Tensor", $"the {DType} tensor {Name ?? ""}{Shape} was disposed");
    public IBackend Backend => Backends.Backend.For(Device);
    public bool IsDisposed => _storage is null;

    /// <summary>Address of the first element (host or device address depending on <see cref="Device"/>).</summary>
    public nint DataPointer => Storage.Pointer + (nint)ByteOffset;

    /// <summary>
    /// The per-row F32 scales of an I8 weight [rows, cols] (weight-only int8): element [o, i] stands for
    /// this[o, i] · RowScale[o]. Null for every other tensor. Owned by this tensor (moved and disposed with it).
    /// </summary>
    public Tensor? RowScale { get; private set; }

    /// <summary>Optional name (parameter name) used in error messages and printing.</summary>
    public string? Name { get; set; }

    // ---- autograd ----
    public bool RequiresGrad { get; set; }
    /// <summary>Accumulated gradient (same shape and device), or null. Its type is F32 for F32 and BF16 activations, except
    /// a BF16 one where only BF16 products read it (<see cref="NarrowGradient"/>: a Linear's output on CUDA with BF16
    /// products, e.g. with <see cref="RetainGrad"/>).</summary>
    public Tensor? Grad { get; internal set; }
    /// <summary>The tape node that produced this tensor; null for leaves.</summary>
    internal Node? GradFn { get; set; }
    public bool IsLeaf => GradFn is null;
    /// <summary>Keep <see cref="Grad"/> of a non-leaf after backward (as PyTorch's retain_grad()).</summary>
    public bool RetainGrad { get; set; }
    /// <summary>BF16 where this tensor's gradient is only read as a BF16 product's operand (a Linear's output without a bias
    /// gradient, with BF16 products: its backward rounds the gradient to BF16 first), so an op that makes the gradient may
    /// write it in BF16 itself (<see cref="Autograd.Tape.GradientType"/>); null: F32 (or the tensor's own type).</summary>
    internal DType? NarrowGradient { get; set; }
    internal TensorScope? Scope { get; set; }

    // ---- creation ----
    public static Tensor Empty(Shape shape, DType dtype = DType.F32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        var storage = Backends.Backend.For(dev).Allocate(shape.NumElements * dtype.ElementSize());
        return new Tensor(storage, 0, shape, dtype);
    }

    public static Tensor Zeros(Shape shape, DType dtype = DType.F32, Device? device = null)
    {
        var t = Empty(shape, dtype, device);
        t.Backend.Fill(t, 0);
        return t;
    }

    public static Tensor Full(Shape shape, float value, Device? device = null)
    {
        var t = Empty(shape, DType.F32, device);
        t.Backend.Fill(t, value);
        return t;
    }

    public static Tensor Ones(Shape shape, Device? device = null) => Full(shape, 1f, device);

    public static Tensor From(ReadOnlySpan<float> data, params int[] shape) => FromSpan(data, DType.F32, shape);
    public static Tensor From(ReadOnlySpan<double> data, params int[] shape) => FromSpan(data, DType.F64, shape);
    public static Tensor From(ReadOnlySpan<int> data, params int[] shape) => FromSpan(data, DType.I32, shape);
    public static Tensor From(ReadOnlySpan<long> data, params int[] shape) => FromSpan(data, DType.I64, shape);
    public static Tensor From(ReadOnlySpan<Half> data, params int[] shape) => FromSpan(data, DType.F16, shape);
    public static Tensor From(ReadOnlySpan<BFloat16> data, params int[] shape) => FromSpan(data, DType.BF16, shape);

    public static Tensor Scalar(float value) => From([value]);

    private static Tensor FromSpan<T>(ReadOnlySpan<T> data, DType dtype, int[] shape) where T : unmanaged
    {
        var s = shape.Length == 0 && data.Length != 1 ? new Shape(data.Length) : new Shape(shape);
        if (s.NumElements != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill shape {s} ({s.NumElements} elements)");
        var t = Empty(s, dtype);
        data.CopyTo(t.AsSpan<T>());
        return t;
    }

    // ---- host access ----
    /// <summary>The elements as a span (CPU tensors only; <typeparamref name="T"/> must match the dtype).</summary>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (!Device.IsCpu) throw new InvalidOperationException($"tensor {Name}{Shape} is on {Device}; copy it to the CPU first");
        if (typeof(T) != DType.ClrType())
            throw new InvalidOperationException($"tensor {Name}{Shape} holds {DType}, not {typeof(T).Name}");
        if (NumElements > int.MaxValue) throw new InvalidOperationException($"tensor {Shape} is too large for one span");
        return new Span<T>((void*)DataPointer, (int)NumElements);
    }

    /// <summary>Pointer to float32 data (CPU, F32 only).</summary>
    public float* F32
    {
        get
        {
            if (DType != DType.F32) throw new InvalidOperationException($"tensor {Name}{Shape} holds {DType}, not F32");
            return (float*)DataPointer;
        }
    }

    public float[] ToFloatArray()
    {
        using var c = To(DType.F32, Device.Cpu);
        return c.AsSpan<float>().ToArray();
    }

    public double[] ToDoubleArray()
    {
        using var c = To(DType.F64, Device.Cpu);
        return c.AsSpan<double>().ToArray();
    }

    public long[] ToInt64Array()
    {
        using var c = To(DType.I64, Device.Cpu);
        return c.AsSpan<long>().ToArray();
    }

    public float Item()
    {
        if (NumElements != 1) throw new InvalidOperationException($"Item() needs one element; tensor has shape {Shape}");
        return ToFloatArray()[0];
    }

    // ---- conversions and views ----
    /// <summary>A new tensor converted to <paramref name="dtype"/> (not recorded for autograd).</summary>
    public Tensor To(DType dtype, Device? device = null)
    {
        var dev = device ?? Device;
        if (!dev.IsCpu || !Device.IsCpu)
            return Backends.Backend.Copy(this, dtype, dev);
        var r = Empty(Shape, dtype, Device.Cpu);
        DTypeConvert.Convert((void*)DataPointer, DType, (void*)r.DataPointer, dtype, NumElements);
        return r;
    }

    public Tensor To(Device device) => To(DType, device);

    /// <summary>Overwrites this tensor's elements with <paramref name="source"/>'s (same element count), converting the dtype.</summary>
    public void CopyFrom(Tensor source)
    {
        if (source.NumElements != NumElements)
            throw new ArgumentException($"cannot copy {source.Shape} ({source.NumElements} elements) into {Name}{Shape}");
        if (!Device.IsCpu || !source.Device.IsCpu)
        {
            using var staged = Backends.Backend.Copy(source, DType, Device);
            var row = new Shape(1, (int)NumElements);
            using var from = staged.ViewOf(row, 0);
            using var to = ViewOf(row, 0);   // plain views: nothing recorded on the tape
            Backends.Backend.For(Device).CopyColumns(from, 0, to, 0, (int)NumElements);
            return;
        }
        DTypeConvert.Convert((void*)source.DataPointer, source.DType, (void*)DataPointer, DType, NumElements);
    }

    /// <summary>
    /// Moves the elements to <paramref name="device"/> in place: the same tensor object (name, RequiresGrad, identity
    /// for tied parameters) gets new storage there; the old storage is released and any gradient dropped.
    /// </summary>
    internal void MoveTo(Device device)
    {
        if (Device == device) return;
        var moved = To(DType, device).Persist();
        var storage = moved.Storage;
        storage.AddReference();
        moved.Dispose();
        var old = Interlocked.Exchange(ref _storage, storage);
        ByteOffset = 0;
        old?.Release();
        RowScale?.MoveTo(device);
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>
    /// Makes this tensor (the same object: name, identity for tied parameters) hold <paramref name="source"/>'s storage,
    /// dtype and row scales instead of its own — how a loaded model's weights become BF16/F16/I8 in place, without a
    /// widened copy. The shapes must match; <paramref name="source"/> gives up its storage (it is disposed) and its
    /// <paramref name="rowScale"/> becomes this tensor's.
    /// </summary>
    internal void ReplaceWith(Tensor source, Tensor? rowScale = null)
    {
        if (source.Shape != Shape) throw new ArgumentException($"cannot replace {Name}{Shape} with a tensor of shape {source.Shape}");
        if ((rowScale is not null) != (source.DType == DType.I8))
            throw new ArgumentException($"{Name}: an I8 weight needs its row scales and only an I8 weight has them");
        var storage = source.Storage;
        storage.AddReference();
        long offset = source.ByteOffset;
        var dtype = source.DType;
        source.Dispose();
        var old = Interlocked.Exchange(ref _storage, storage);
        ByteOffset = offset;
        DType = dtype;
        old?.Release();
        RowScale?.Dispose();
        RowScale = rowScale?.Persist();
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>A copy that is not recorded for autograd.</summary>
    public Tensor Clone() => To(DType, Device);

    /// <summary>A view of the same storage with a new shape; one dimension may be -1.</summary>
    public Tensor Reshape(params int[] shape) => F.Reshape(this, shape);

    /// <summary>A view of rows [start, start+length) along axis 0.</summary>
    public Tensor Slice(int start, int length) => F.Slice(this, start, length);

    /// <summary>A view that shares storage but is cut from the tape.</summary>
    public Tensor Detach() => ViewOf(Shape, 0);

    internal Tensor ViewOf(Shape shape, long extraByteOffset)
    {
        Storage.AddReference();
        return new Tensor(Storage, ByteOffset + extraByteOffset, shape, DType);
    }

    /// <summary>Runs backpropagation from this scalar through the tape.</summary>
    public void Backward() => Tape.Backward(this);

    /// <summary>Removes this tensor from its scope so it outlives it (ownership passes to the caller).</summary>
    public Tensor Persist()
    {
        Scope = null;
        return this;
    }

    public void Dispose()
    {
        var s = Interlocked.Exchange(ref _storage, null);
        s?.Release();
        RowScale?.Dispose();
        RowScale = null;
        Grad?.Dispose();
        Grad = null;
    }

    public override string ToString() => Format(6);

    /// <summary>PyTorch-like printing: up to <paramref name="edge"/> values at each end of every axis.</summary>
    public string Format(int edge = 6)
    {
        if (IsDisposed) return $"tensor(<disposed>, dtype={DType})";
        var sb = new StringBuilder("tensor(");
        if (Device.IsCpu && DType != DType.I64)
        {
            var v = ToDoubleArray();
            FormatAxis(sb, v, 0, 0, edge, DType.IsFloatingPoint());
        }
        else if (Device.IsCpu)
        {
            var v = ToInt64Array().Select(x => (double)x).ToArray();
            FormatAxis(sb, v, 0, 0, edge, false);
        }
        else sb.Append("...");
        sb.Append($", shape={Shape}, dtype={DType}, device={Device}");
        if (RequiresGrad) sb.Append(", requires_grad");
        return sb.Append(')').ToString();
    }

    private void FormatAxis(StringBuilder sb, double[] v, int axis, long offset, int edge, bool isFloat)
    {
        if (Rank == 0) { sb.Append(FormatValue(v[0], isFloat)); return; }
        int n = Shape[axis];
        long stride = 1;
        for (int a = axis + 1; a < Rank; a++) stride *= Shape[a];
        sb.Append('[');
        for (int i = 0; i < n; i++)
        {
            if (n > 2 * edge && i == edge) { sb.Append("..., "); i = n - edge; }
            if (axis == Rank - 1) sb.Append(FormatValue(v[offset + i], isFloat));
            else FormatAxis(sb, v, axis + 1, offset + i * stride, edge, isFloat);
            if (i < n - 1) sb.Append(axis == Rank - 1 ? ", " : ",\n" + new string(' ', 8 + axis));
        }
        sb.Append(']');
    }

    private static string FormatValue(double x, bool isFloat) =>
        isFloat ? x.ToString("0.0000##", CultureInfo.InvariantCulture) : x.ToString(CultureInfo.InvariantCulture);
}
