# Sourced by the GPU scripts (runs ON the GPU machine): mps_on starts a CUDA MPS daemon, so that many small processes
# share the GPU instead of taking turns (time-sliced, 18 small processes ran each 15-20x slower), and checks it by
# creating a context through it (a client that cannot reach the server fails there); otherwise it stops it again.
# mps_off stops it (before timing anything). Both print one line.
mps_off() { echo quit | nvidia-cuda-mps-control > /dev/null 2>&1; }
mps_on() {
  if command -v nvidia-cuda-mps-control > /dev/null && nvidia-cuda-mps-control -d; then
    if timeout 60 python3 -c 'import ctypes; c = ctypes.CDLL("libcuda.so.1"); d = ctypes.c_int(); x = ctypes.c_void_p(); p = ctypes.c_void_p()
assert c.cuInit(0) == 0 and c.cuDeviceGet(ctypes.byref(d), 0) == 0
r = c.cuCtxCreate_v2(ctypes.byref(x), 0, d); assert r == 0, r
assert c.cuMemAlloc_v2(ctypes.byref(p), 1 << 20) == 0' && [ -n "$(echo get_server_list | nvidia-cuda-mps-control)" ]; then
      echo "MPS: on (server $(echo get_server_list | nvidia-cuda-mps-control | tr '\n' ' '))"
    else
      mps_off; echo "MPS: did not work here; processes time-slice the GPU"
    fi
  else
    echo "MPS: not available; processes time-slice the GPU"
  fi
}
