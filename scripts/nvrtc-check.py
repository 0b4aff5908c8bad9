#!/usr/bin/env python3
# Compile-checks the CUDA kernels without a GPU: each Kernels/*.cu with common.cuh prepended (as CudaCompiler does), for
# sm_90 with CudaCompiler's options, by whatever NVRTC this machine has (NVRTC 11.8 on the development machine: the
# GPU machine's 13.0 may accept more, so this finds errors, it does not prove a kernel right). No GPU and no driver needed.
#   python3 scripts/nvrtc-check.py [FILE.cu ...] [--ptx DIR] [--regs] [--group G]   (default: every kernel file; --ptx writes each file's PTX,
#       e.g. to compare two versions of a kernel instruction for instruction; --regs lists each kernel's registers and stack
#       frame (spills) from the sm_90 cubin — this NVRTC's ptxas, which may allocate a few registers apart from the driver's;
#       --cubin DIR writes each file's sm_90 cubin, for `cuobjdump -sass` / `nvdisasm` without a GPU: both are in Debian's
#       nvidia-cuda-toolkit package, usable unpacked: apt-get download nvidia-cuda-toolkit && dpkg -x nvidia-cuda-toolkit*.deb x)
import ctypes, glob, os, struct, sys
kernels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "Mamba4", "Backends", "Cuda", "Kernels")
args, ptx_dir = sys.argv[1:], None
if "--ptx" in args:
    i = args.index("--ptx"); ptx_dir = args[i + 1]; del args[i:i + 2]; os.makedirs(ptx_dir, exist_ok=True)
cubin_dir = None
if "--cubin" in args:
    i = args.index("--cubin"); cubin_dir = args[i + 1]; del args[i:i + 2]; os.makedirs(cubin_dir, exist_ok=True)
regs = "--regs" in args
if regs: args.remove("--regs")
group = None   # --group G: only compile group G of a file that splits its instantiations (-DKERNEL_GROUP=G, common.cuh; -1: none)
if "--group" in args:
    i = args.index("--group"); group = int(args[i + 1]); del args[i:i + 2]

def kernel_resources(elf):
    """(kernel, registers, frame bytes) of each kernel in a CUDA ELF, from .nv.info's EIATTR_REGCOUNT (0x2f) and
    EIATTR_FRAME_SIZE (0x11) entries (format 4: u16 size, then u32 symbol index, u32 value)."""
    shoff, = struct.unpack_from("<Q", elf, 0x28); shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    cstr = lambda at: elf[at:elf.index(b"\0", at)].decode()
    name = lambda sec: cstr(sections[shstrndx][4] + sec[0])
    symtab = next(sec for sec in sections if name(sec) == ".symtab")
    symbol = lambda i: cstr(sections[symtab[6]][4] + struct.unpack_from("<I", elf, symtab[4] + 24 * i)[0])
    info = next(sec for sec in sections if name(sec) == ".nv.info")
    data, i, found = elf[info[4]:info[4] + info[5]], 0, {}
    while i < len(data):
        fmt, attr = data[i], data[i + 1]
        if fmt == 4:
            size, = struct.unpack_from("<H", data, i + 2)
            if attr in (0x2F, 0x11) and size == 8:
                index, value = struct.unpack_from("<II", data, i + 4)
                found.setdefault(symbol(index), {})[attr] = value
            i += 4 + size
        else:
            i += {3: 4, 2: 3}.get(fmt, 2)
    return [(k, v.get(0x2F, 0), v.get(0x11, 0)) for k, v in found.items() if 0x2F in v]

libs = sorted(glob.glob("/usr/local/cuda/lib64/libnvrtc.so*") + glob.glob("/usr/lib/x86_64-linux-gnu/libnvrtc.so*"))
libs = [l for l in libs if "builtins" not in l]
if not libs: sys.exit("nvrtc-check: no libnvrtc found (Debian: add \"contrib non-free\" to the Components of /etc/apt/sources.list.d/debian.sources, then apt-get install libnvrtc11.2; or a CUDA toolkit)")
nvrtc = ctypes.CDLL(libs[-1])
files = args or sorted(os.path.basename(f) for f in glob.glob(os.path.join(kernels, "*.cu")))
common = open(os.path.join(kernels, "common.cuh"), encoding="utf-8").read()
failed = 0
for name in files:
    source = '#line 1 "common.cuh"\n' + common + '\n#line 1 "' + name + '"\n' + open(os.path.join(kernels, name), encoding="utf-8").read()
    prog = ctypes.c_void_p()
    if nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None) != 0: sys.exit("nvrtcCreateProgram failed")
    arch = b"compute_90" if ptx_dir else b"sm_90"
    opts = [b"--gpu-architecture=" + arch, b"--std=c++17", b"-DMAMBA4_NVRTC=1"]
    if group: opts.append(b"-DKERNEL_GROUP=%d" % group)
    rc = nvrtc.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t(); nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value); nvrtc.nvrtcGetProgramLog(prog, log)
    text = log.value.decode().strip()
    print(f"{name}: {'ok' if rc == 0 else 'FAILED'}" + (f"\n{text}" if text else ""))
    failed += rc != 0
    if rc == 0 and (regs or cubin_dir):
        nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size)); buf = ctypes.create_string_buffer(size.value); nvrtc.nvrtcGetCUBIN(prog, buf)
        if regs:
            for kernel, r, frame in sorted(kernel_resources(buf.raw)): print(f"  {kernel}: {r} registers, {frame} B stack frame")
        if cubin_dir: open(os.path.join(cubin_dir, name.replace(".cu", f"-g{group}.cubin" if group else ".cubin")), "wb").write(buf.raw)
    if rc == 0 and ptx_dir:
        nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)); buf = ctypes.create_string_buffer(size.value); nvrtc.nvrtcGetPTX(prog, buf)
        open(os.path.join(ptx_dir, name.replace(".cu", f"-g{group}.ptx" if group else ".ptx")), "w").write(buf.value.decode())
print(f"{len(files) - failed} compiled, {failed} failed ({os.path.basename(libs[-1])})")
sys.exit(1 if failed else 0)
