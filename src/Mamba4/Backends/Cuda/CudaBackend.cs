using System.Text;
using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

/// <summary>Arithmetic of the CUDA backend's F32 matrix products.</summary>
public enum MatmulPrecision { F32, Tf32, Bf16 }

/// <summary>Which forward kernel the CUDA selective scan runs (<see cref="EngineSettings.ScanForward"/>): the chunked kernels
/// (Auto: two phases over chunks of L, split per shape), or the time-parallel lanes kernel where it applies (selective,
/// N = 16), at 80 registers and 3 blocks an SM (Lanes) or 128 registers and 2 blocks (LanesWide).</summary>
public enum ScanForwardPlan { Auto, Lanes, LanesWide }

/// <summary>
/// The CUDA backend of one GPU: its primary context, one non-blocking stream on which every kernel, copy
/// and cuBLAS call is queued in order, a caching allocator, pinned staging buffers for host transfers,
/// and the kernels (NVRTC-compiled from <c>Kernels/*.cu</c> at first use). One partial file per kernel
/// family, mirroring <c>Ops/</c>. All work is asynchronous; host reads (<c>ToFloatArray</c>, <c>Item</c>) wait.
/// Set MAMBA4_CUDA_SYNC=1 to wait after every launch, so that a fault names the kernel that caused it.
/// </summary>
public sealed unsafe partial class CudaBackend : IGruBackend, IMambaStepBackend, IDeviceMemory
{
    private const int StagingBytes = 8 << 20;

    [ThreadStatic] private static nint _currentContext;

    private readonly nint _context;
    private readonly Dictionary<(string File, int Group), nint> _modules = new();
    private readonly Dictionary<(string File, string Kernel), nint> _functions = new();
    private readonly Dictionary<(string File, string Kernel), int> _dynamicSharedLimits = new();
    private readonly Lock _lock = new();
    private readonly bool _syncEveryLaunch = Backend.Settings.CudaSyncEveryLaunch;
    private volatile nint _cublas;
    private readonly byte*[] _staging = new byte*[2];
    private readonly nint[] _stagingDone = new nint[2];
    private string _lastLaunch = "(none)";

    private CudaBackend(int index)
    {
        Device = Device.Cuda(index);
        int dev;
        CudaDriver.Check(CudaDriver.cuDeviceGet(&dev, index), $"cuDeviceGet({index})");
        Ordinal = dev;
        nint ctx;
        CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(&ctx, dev), $"cuDevicePrimaryCtxRetain({index})");
        _context = ctx;
        MakeCurrent();
        nint stream;
        CudaDriver.Check(CudaDriver.cuStreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
        Stream = stream;
        var name = new byte[256];
        fixed (byte* p = name) CudaDriver.Check(CudaDriver.cuDeviceGetName(p, name.Length, dev), "cuDeviceGetName");
        DeviceName = Encoding.UTF8.GetString(name).TrimEnd('\0');
        ComputeCapability = (Attribute(CudaDriver.AttrComputeCapabilityMajor), Attribute(CudaDriver.AttrComputeCapabilityMinor));
        Multiprocessors = Attribute(CudaDriver.AttrMultiprocessorCount);
        MaxSharedMemoryPerBlock = Attribute(CudaDriver.AttrMaxSharedMemoryPerBlockOptin);
        L2CacheBytes = Attribute(CudaDriver.AttrL2CacheSize);
        nuint total;
        CudaDriver.Check(CudaDriver.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
        TotalMemory = (long)total;
        Allocator = new CudaAllocator(this);
    }

    /// <summary>The backend of GPU <paramref name="index"/>, or NotSupportedException saying why CUDA cannot be used.</summary>
    internal static CudaBackend Create(int index)
    {
        if (CudaRuntime.Unavailable is { } reason)
            throw new NotSupportedException($"CUDA is not available on this machine: {reason}");
        if (index < 0 || index >= CudaRuntime.DeviceCount)
            throw new NotSupportedException($"cuda:{index} does not exist: the driver reports {CudaRuntime.DeviceCount} GPU(s)");
        return new CudaBackend(index);
    }

    public Device Device { get; }
    public string Name => $"cuda:{Device.Index} ({DeviceName}, sm_{ComputeCapability.Major}{ComputeCapability.Minor})";
    public int Ordinal { get; }
    public string DeviceName { get; }
    public (int Major, int Minor) ComputeCapability { get; }
    public string Architecture => $"sm_{ComputeCapability.Major}{ComputeCapability.Minor}";
    public int Multiprocessors { get; }
    public int MaxSharedMemoryPerBlock { get; }
    /// <summary>The GPU's L2 cache (bytes): what the decoding step may ask it to hold ahead (<see cref="L2Ahead"/>).</summary>
    public int L2CacheBytes { get; }
    public long TotalMemory { get; }
    public nint Stream { get; }
    public CudaAllocator Allocator { get; }
    public static int DriverVersion => CudaRuntime.DriverVersion;
    /// <summary>The CUDA version the driver supports, e.g. "13.0".</summary>
    public static string DriverVersionText => $"{DriverVersion / 1000}.{DriverVersion % 1000 / 10}";
    /// <summary>Null when CUDA can be used, otherwise why not (no driver, no GPU, a library missing).</summary>
    public static string? Unavailable => CudaRuntime.Unavailable;
    /// <summary>GPUs the driver reports (0 when CUDA is unavailable).</summary>
    public static int DeviceCount => CudaRuntime.Unavailable is null ? CudaRuntime.DeviceCount : 0;
    public static string NvrtcVersion => CudaRuntime.NvrtcVersion;

    /// <summary>
    /// How F32 GEMMs (<see cref="Gemm"/>) are computed: F32 (default: results match the CPU), TF32 tensor cores, or BF16
    /// tensor cores (operands rounded to BF16, F32 accumulation and output) — mixed precision with F32 master weights,
    /// activations and optimizer state. The environment variable MAMBA4_CUDA_MATMUL=f32|tf32|bf16 sets the default.
    /// The SSD scan's chunk products follow it too: F32-accurate (3xTF32) under F32, single TF32 otherwise (<see cref="SsdProducts"/>).
    /// </summary>
    public MatmulPrecision MatmulPrecision { get; set; } = Backend.Settings.CudaMatmul;

    /// <summary>Lets cuBLAS use TF32 tensor cores for F32 GEMMs (<see cref="MatmulPrecision"/> TF32).</summary>
    public bool AllowTf32
    {
        get => MatmulPrecision == MatmulPrecision.Tf32;
        set => MatmulPrecision = value ? MatmulPrecision.Tf32 : MatmulPrecision.F32;
    }


    private int Attribute(int attribute)
    {
        int v;
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(&v, attribute, Ordinal), $"cuDeviceGetAttribute({attribute})");
        return v;
    }

    /// <summary>Makes this device's context current on the calling thread (driver calls need it).</summary>
    public void MakeCurrent()
    {
        if (_currentContext == _context) return;
        CudaDriver.Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        _currentContext = _context;
    }

    /// <summary>Waits until everything queued on the stream has finished; a fault there is reported with the last kernel launched.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        int r = CudaDriver.cuStreamSynchronize(Stream);
        if (r != 0)
            throw new CudaException($"{Device}: the stream failed: {CudaDriver.Describe(r)}; the last kernel launched was {_lastLaunch} " +
                "(set MAMBA4_CUDA_SYNC=1 to check after every launch)", r);
    }

    public Storage Allocate(long bytes) => Allocator.Allocate(bytes);

    // ---- kernels ----

    /// <summary>The function <paramref name="kernel"/> of <c>Kernels/<paramref name="file"/></c>, compiling the file at first use.</summary>
    internal nint Function(string file, string kernel)
    {
        lock (_lock)
        {
            if (_functions.TryGetValue((file, kernel), out var f)) return f;
            MakeCurrent();
            var module = Module(file, kernel);
            var name = Encoding.UTF8.GetBytes(kernel + "\0");
            fixed (byte* n = name) CudaDriver.Check(CudaDriver.cuModuleGetFunction(&f, module, n), $"cuModuleGetFunction({file}: {kernel})");
            // dynamic shared memory up to the opt-in maximum less the kernel's static shared memory (the two share it)
            int staticShared;
            CudaDriver.Check(CudaDriver.cuFuncGetAttribute(&staticShared, CudaDriver.FuncAttrSharedSizeBytes, f), "cuFuncGetAttribute");
            int dynamicLimit = Math.Max(0, MaxSharedMemoryPerBlock - staticShared);
            if (MaxSharedMemoryPerBlock > 48 * 1024)   // beyond the default 48 KB a kernel must opt in
                CudaDriver.Check(CudaDriver.cuFuncSetAttribute(f, CudaDriver.FuncAttrMaxDynamicSharedSizeBytes, dynamicLimit),
                    $"cuFuncSetAttribute({file}: {kernel}, max dynamic shared {dynamicLimit:N0} B)");
            _functions[(file, kernel)] = f;
            _dynamicSharedLimits[(file, kernel)] = dynamicLimit;
            return f;
        }
    }

    /// <summary>The module that holds <paramref name="kernel"/> (under the lock), compiled and loaded at first use. A file that
    /// splits its instantiations in compile groups (<see cref="Kernels.Groups"/>) is compiled once per group asked for; a
    /// kernel outside every group (so in all of them) comes from a module of the file already loaded, else from a compile of
    /// those kernels alone (group −1: seconds, where a group takes 20–30).</summary>
    private nint Module(string file, string kernel)
    {
        int group = 0;
        if (Kernels.Groups.TryGetValue(file, out var groups) && (group = groups.GetValueOrDefault(kernel)) == 0)
        {
            foreach (var (key, loaded) in _modules)
                if (key.File == file) return loaded;
            group = -1;
        }
        if (_modules.TryGetValue((file, group), out var module)) return module;
        var cubin = CudaCompiler.Cubin(file, CudaCompiler.Program(file), Architecture, group);
        string what = group > 0 ? $"{file}, group {group}" : group < 0 ? $"{file}, shared kernels" : file;
        fixed (byte* image = cubin) CudaDriver.Check(CudaDriver.cuModuleLoadData(&module, image), $"cuModuleLoadData({what})");
        _modules[(file, group)] = module;
        return module;
    }

    /// <summary>The most dynamic shared memory a block of <paramref name="kernel"/> may ask for: the device's opt-in
    /// maximum less the kernel's static shared memory.</summary>
    internal int DynamicSharedLimit(string file, string kernel)
    {
        Function(file, kernel);
        lock (_lock) return _dynamicSharedLimits[(file, kernel)];
    }

    /// <summary>Registers and local-memory bytes per thread of a kernel (the compiler's resource report).</summary>
    public (int Registers, int LocalBytes) KernelResources(string file, string kernel)
    {
        var f = Function(file, kernel);
        int regs, local;
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(&regs, CudaDriver.FuncAttrNumRegs, f), "cuFuncGetAttribute");
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(&local, CudaDriver.FuncAttrLocalSizeBytes, f), "cuFuncGetAttribute");
        return (regs, local);
    }

    /// <summary>Queues <paramref name="kernel"/>&lt;&lt;&lt;grid, block, sharedBytes&gt;&gt;&gt;(args) on the stream.</summary>
    internal void Launch(string file, string kernel, Dim3 grid, Dim3 block, int sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        LaunchOn(false, file, kernel, grid, block, sharedBytes, args);

    /// <summary>
    /// As <see cref="Launch"/>, with programmatic dependent launch where the GPU and driver have it (sm_90+,
    /// <see cref="ProgrammaticLaunch"/>): the kernel may start while the previous one still runs, so it must read nothing
    /// the previous kernels write, and write nothing, before its griddepcontrol.wait (Kernels/mamba_step.cu: grid_wait).
    /// </summary>
    internal void LaunchEarly(string file, string kernel, Dim3 grid, Dim3 block, int sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        LaunchOn(ProgrammaticLaunch && ComputeCapability.Major >= 9 && CudaDriver.cuLaunchKernelEx != null, file, kernel, grid, block, sharedBytes, args);

    /// <summary>Whether <see cref="LaunchEarly"/> uses programmatic dependent launch (benchmarks turn it off to compare).</summary>
    internal bool ProgrammaticLaunch { get; set; } = true;

    private void LaunchOn(bool early, string file, string kernel, Dim3 grid, Dim3 block, int sharedBytes, ReadOnlySpan<KernelArg> args)
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
        var f = Function(file, kernel);
        MakeCurrent();
        var ptrs = stackalloc void*[Math.Max(1, args.Length)];
        fixed (KernelArg* a = args)
        {
            for (int i = 0; i < args.Length; i++) ptrs[i] = a + i;
            int r;
            if (early)
            {
                var attribute = new LaunchAttribute { Id = LaunchAttribute.ProgrammaticStreamSerialization, Value = 1 };
                var config = new LaunchConfig
                {
                    GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block.X, BlockY = block.Y, BlockZ = block.Z,
                    SharedBytes = (uint)sharedBytes, Stream = Stream, Attributes = &attribute, AttributeCount = 1,
                };
                r = CudaDriver.cuLaunchKernelEx(&config, f, ptrs, null);
            }
            else r = CudaDriver.cuLaunchKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, Stream, ptrs, null);
            AfterLaunch(r, file, kernel, grid, block, sharedBytes);
        }
    }

    /// <summary>Launch with one by-value struct parameter (the kernel's first), then <paramref name="args"/>.</summary>
    internal void Launch<T>(string file, string kernel, Dim3 grid, Dim3 block, int sharedBytes, in T parameters, params ReadOnlySpan<KernelArg> args)
        where T : unmanaged
    {
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
        var f = Function(file, kernel);
        MakeCurrent();
        var ptrs = stackalloc void*[1 + args.Length];
        fixed (T* p = &parameters)
        fixed (KernelArg* a = args)
        {
            ptrs[0] = p;
            for (int i = 0; i < args.Length; i++) ptrs[1 + i] = a + i;
            int r = CudaDriver.cuLaunchKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, Stream, ptrs, null);
            AfterLaunch(r, file, kernel, grid, block, sharedBytes);
        }
    }

    /// <summary>Kernels launched so far (cuBLAS calls not counted).</summary>
    public long LaunchCount { get; private set; }

    private void AfterLaunch(int result, string file, string kernel, Dim3 grid, Dim3 block, int sharedBytes)
    {
        LaunchCount++;
        _lastLaunch = $"{kernel} ({file}) <<<grid {grid}, block {block}, {sharedBytes} B shared>>>";
        if (result != 0) throw new CudaException($"{Device}: launch of {_lastLaunch} failed: {CudaDriver.Describe(result)}", result);
        if (_syncEveryLaunch && !IsCapturing) Synchronize();
    }

    /// <summary>Blocks for a grid-stride loop over <paramref name="n"/> items: enough to fill the GPU, no more.</summary>
    internal uint GridFor(long n, int block = 256) => (uint)Math.Clamp((n + block - 1) / block, 1, (long)Multiprocessors * 16);

    /// <summary>A device word set to ulong.MaxValue; kernels lower it to the first bad position they meet.</summary>
    private Tensor BadIndexSlot()
    {
        var slot = Tensor.Empty(new Shape(1), DType.I64, Device);
        MakeCurrent();
        Native.CudaDriver.Check(Native.CudaDriver.cuMemsetD8Async((ulong)slot.DataPointer, 0xff, 8, Stream), "cuMemsetD8Async");
        return slot;
    }

    /// <summary>Reads the slot back (waits for the stream): −1 when every index was valid, else the first bad position.</summary>
    private long ReadBadIndex(Tensor slot)
    {
        long value;
        CopyToHost(slot, (nint)(&value), 8);
        slot.Dispose();
        return value;
    }

    private static long HostIndex(Tensor ids, long position)
    {
        using var one = ids.Reshape(-1).Slice((int)position, 1);
        return one.ToInt64Array()[0];
    }

    // one warp per row, 8 rows per block
    private static uint RowBlocks(long rows) => (uint)((rows + 7) / 8);

    /// <summary>A grid-stride kernel over <paramref name="n"/> items (nothing when n = 0).</summary>
    private void Map(string file, string kernel, long n, params ReadOnlySpan<KernelArg> args)
    {
        if (n == 0) return;
        Launch(file, kernel, GridFor(n), 256, 0, args);
    }

    // ---- memory ----

    public void Fill(Tensor t, float value)
    {
        if (t.NumElements == 0) return;
        MakeCurrent();
        ulong p = (ulong)t.DataPointer;
        nuint n = (nuint)t.NumElements;
        ulong bits = ElementBits(t.DType, value);
        switch (t.DType.ElementSize())
        {
            case 1: CudaDriver.Check(CudaDriver.cuMemsetD8Async(p, (byte)bits, n, Stream), "cuMemsetD8Async"); break;
            case 2: CudaDriver.Check(CudaDriver.cuMemsetD16Async(p, (ushort)bits, n, Stream), "cuMemsetD16Async"); break;
            case 4: CudaDriver.Check(CudaDriver.cuMemsetD32Async(p, (uint)bits, n, Stream), "cuMemsetD32Async"); break;
            default: Launch(Kernels.Elementwise.File, Kernels.Elementwise.FillU64, GridFor(t.NumElements), 256, 0, t, bits, t.NumElements); break;
        }
    }

    /// <summary>The bit pattern of <paramref name="value"/> converted to one element of <paramref name="dtype"/>.</summary>
    private static ulong ElementBits(DType dtype, float value)
    {
        using var one = Tensor.From([value]);
        ulong bits = 0;
        DTypeConvert.Convert((void*)one.DataPointer, DType.F32, &bits, dtype, 1);
        return bits;
    }

    public void CopyColumns(Tensor src, int srcCol, Tensor dst, int dstCol, int cols)
    {
        long rows = src.Shape.Rows;
        int sLast = src.Shape.Last, dLast = dst.Shape.Last, es = src.DType.ElementSize();
        if (rows == 0 || cols == 0) return;
        if ((rows == 1 || (cols == sLast && cols == dLast)))
        {
            MakeCurrent();
            ulong s = (ulong)(src.DataPointer + (nint)((long)srcCol * es)), d = (ulong)(dst.DataPointer + (nint)((long)dstCol * es));
            CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(d, s, (nuint)(rows * cols * es), Stream), "cuMemcpyDtoDAsync");
            return;
        }
        string kernel = es switch { 1 => Kernels.Elementwise.CopyColumnsU8, 2 => Kernels.Elementwise.CopyColumnsU16, 4 => Kernels.Elementwise.CopyColumnsU32, 8 => Kernels.Elementwise.CopyColumnsU64, _ => throw new NotSupportedException($"element size {es}") };
        long n = rows * cols;
        Launch(Kernels.Elementwise.File, kernel, GridFor(n), 256, 0, src, sLast, srcCol, dst, dLast, dstCol, cols, n);
    }

    // ---- host transfers (IDeviceMemory) ----

    private byte* Staging(int i)
    {
        if (_staging[i] != null) return _staging[i];
        MakeCurrent();
        void* p;
        CudaDriver.Check(CudaDriver.cuMemHostAlloc(&p, StagingBytes, 1 /* PORTABLE */), "cuMemHostAlloc (pinned staging buffer)");
        nint e;
        CudaDriver.Check(CudaDriver.cuEventCreate(&e, 2 /* DISABLE_TIMING */), "cuEventCreate");
        _stagingDone[i] = e;
        CudaDriver.Check(CudaDriver.cuEventRecord(e, Stream), "cuEventRecord");
        return _staging[i] = (byte*)p;
    }

    /// <summary>Host → device through two pinned buffers: the copy is queued and the host memory may be reused at once.</summary>
    public void CopyFromHost(nint source, Tensor destination, long bytes) => CopyFromHost(source, destination.DataPointer, bytes);

    /// <summary>Host → device memory at <paramref name="destination"/> (a device address).</summary>
    internal void CopyFromHost(nint source, nint destination, long bytes)
    {
        lock (_lock)
        {
            MakeCurrent();
            for (long off = 0, i = 0; off < bytes; off += StagingBytes, i++)
            {
                int k = (int)(i & 1);
                var buffer = Staging(k);
                CudaDriver.Check(CudaDriver.cuEventSynchronize(_stagingDone[k]), "cuEventSynchronize (staging)");
                long n = Math.Min(StagingBytes, bytes - off);
                Buffer.MemoryCopy((void*)(source + (nint)off), buffer, n, n);
                CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync((ulong)(destination + (nint)off), buffer, (nuint)n, Stream), "cuMemcpyHtoDAsync");
                CudaDriver.Check(CudaDriver.cuEventRecord(_stagingDone[k], Stream), "cuEventRecord");
            }
        }
    }

    /// <summary>Device → host through two pinned buffers (waits for the stream, so it also reports earlier kernel faults).</summary>
    public void CopyToHost(Tensor source, nint destination, long bytes) => CopyToHost(source.DataPointer, destination, bytes);

    /// <summary>Device memory at <paramref name="source"/> (a device address) → host.</summary>
    internal void CopyToHost(nint source, nint destination, long bytes)
    {
        lock (_lock)
        {
            MakeCurrent();
            long previousOffset = -1, previousBytes = 0;
            int previous = 0;
            for (long off = 0, i = 0; off < bytes; off += StagingBytes, i++)
            {
                int k = (int)(i & 1);
                var buffer = Staging(k);
                long n = Math.Min(StagingBytes, bytes - off);
                CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(buffer, (ulong)(source + (nint)off), (nuint)n, Stream), "cuMemcpyDtoHAsync");
                CudaDriver.Check(CudaDriver.cuEventRecord(_stagingDone[k], Stream), "cuEventRecord");
                if (previousOffset >= 0) Drain(previous, destination + (nint)previousOffset, previousBytes);
                (previous, previousOffset, previousBytes) = (k, off, n);
            }
            if (previousOffset >= 0) Drain(previous, destination + (nint)previousOffset, previousBytes);
            else Synchronize();
        }
    }

    private void Drain(int k, nint destination, long n)
    {
        int r = CudaDriver.cuEventSynchronize(_stagingDone[k]);
        if (r != 0) Synchronize();   // reports the fault with the last kernel
        Buffer.MemoryCopy(_staging[k], (void*)destination, n, n);
    }

    public void CopyDeviceToDevice(Tensor source, Tensor destination, long bytes)
    {
        if (bytes == 0) return;
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync((ulong)destination.DataPointer, (ulong)source.DataPointer, (nuint)bytes, Stream), "cuMemcpyDtoDAsync");
    }

    // ---- CUDA graphs ----

    /// <summary>True while <see cref="Capture"/> records: work is queued, not run, so nothing may be read back (checks that need a host read are skipped).</summary>
    public bool IsCapturing { get; private set; }

    /// <summary>
    /// Records everything <paramref name="work"/> queues on the stream into a graph (relaxed capture mode) instead of
    /// running it; <see cref="CudaGraph.Launch"/> replays it. Run <paramref name="work"/> once uncaptured first, so that
    /// kernels are compiled and cuBLAS has its workspace. A host read inside <paramref name="work"/> fails the capture.
    /// </summary>
    public CudaGraph Capture(Action work)
    {
        if (CudaDriver.cuStreamBeginCapture == null || CudaDriver.cuGraphInstantiateWithFlags == null)
            throw new NotSupportedException($"{Device}: this driver has no CUDA graph API");
        Synchronize();
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamBeginCapture(Stream, 2 /* CU_STREAM_CAPTURE_MODE_RELAXED */), "cuStreamBeginCapture");
        Allocator.BeginCapture();
        IsCapturing = true;
        long launches = LaunchCount;
        nint graph = 0;
        List<(nint, long)> blocks;
        try
        {
            work();
        }
        finally
        {
            IsCapturing = false;
            blocks = Allocator.EndCapture();
            MakeCurrent();
            int r = CudaDriver.cuStreamEndCapture(Stream, &graph);
            if (r != 0)
            {
                Allocator.ReleaseGraphBlocks(blocks);
                throw new CudaException($"{Device}: cuStreamEndCapture failed: {CudaDriver.Describe(r)} (something in the captured work synchronised or read back)", r);
            }
        }
        nint exec;
        int ri = CudaDriver.cuGraphInstantiateWithFlags(&exec, graph, 0);
        if (ri != 0)
        {
            CudaDriver.cuGraphDestroy(graph);
            Allocator.ReleaseGraphBlocks(blocks);
            CudaDriver.Check(ri, "cuGraphInstantiateWithFlags");
        }
        return new CudaGraph(this, graph, exec, blocks) { Kernels = LaunchCount - launches };
    }

    // ---- timing ----

    /// <summary>Milliseconds of device time taken by <paramref name="work"/> (CUDA events around it on the stream).</summary>
    public float Time(Action work)
    {
        MakeCurrent();
        nint start, stop;
        CudaDriver.Check(CudaDriver.cuEventCreate(&start, 0), "cuEventCreate");
        CudaDriver.Check(CudaDriver.cuEventCreate(&stop, 0), "cuEventCreate");
        try
        {
            CudaDriver.Check(CudaDriver.cuEventRecord(start, Stream), "cuEventRecord");
            work();
            MakeCurrent();
            CudaDriver.Check(CudaDriver.cuEventRecord(stop, Stream), "cuEventRecord");
            int r = CudaDriver.cuEventSynchronize(stop);
            if (r != 0) Synchronize();
            float ms;
            CudaDriver.Check(CudaDriver.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
            return ms;
        }
        finally
        {
            CudaDriver.cuEventDestroy(start);
            CudaDriver.cuEventDestroy(stop);
        }
    }

    /// <summary>Runs <paramref name="work"/> between cuProfilerStart and cuProfilerStop (after the stream is idle, waiting
    /// for it at the end), so that a profiler started with --profile-from-start off collects exactly its kernels.</summary>
    public void Profiled(Action work)
    {
        Synchronize();
        if (CudaDriver.cuProfilerStart != null) CudaDriver.Check(CudaDriver.cuProfilerStart(), "cuProfilerStart");
        try { work(); Synchronize(); }
        finally { if (CudaDriver.cuProfilerStop != null) CudaDriver.cuProfilerStop(); }
    }

    /// <summary>Free and total device memory as the driver reports them.</summary>
    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        CudaDriver.Check(CudaDriver.cuMemGetInfo(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }
}
