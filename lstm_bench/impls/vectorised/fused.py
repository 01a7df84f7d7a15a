"""The LSTM cell's elementwise work, and the whole step loop, as one compiled C call.

Why: at small sizes (B = 1, or H = 64) a step of the vectorised path is ~25 tiny
tensor operations launched from Python (a few microseconds each), where oneDNN's
LSTM runs the whole sequence in one call. Here the same equations run in C:

- `fwd_cell` / `bwd_cell`: one step's elementwise work (activations, c_t, h_t; the
  pre-activation gradients dz_t and d_c) in one pass over (B, H) instead of ~8 and
  ~14 tensor operations. The vectorised path calls them once a step when the step's
  GEMM is oneDNN's (reached only from Python).
- `fwd_loop` / `bwd_loop`: the whole recurrence, calling the BLAS GEMM that torch
  itself links (`sgemm_`/`dgemm_`, MKL in the CPU wheels) once a step, so a forward
  or a backward is one call from Python.

The equations are those of `vectorised` (Greff et al. 2017, arXiv:1503.04069):
forward i, f, o = sigmoid, g = tanh, c_t = f c_{t-1} + i g, h_t = o tanh(c_t); backward
d_c = d_c_next + d_h o (1 - tanh(c_t)^2), dz = [d_c g i(1-i), d_c c_{t-1} f(1-f),
d_c i (1-g^2), d_h tanh(c_t) o(1-o)], d_c_next = d_c f, d_h_{t-1} = d_output_{t-1} + dz W_hh.

float32 uses a branch-free exp (Cephes' expf polynomial, ~1 ulp) that the compiler
vectorises; sigmoid = 1/(1+exp(-x)); tanh is Cephes' tanhf (an odd polynomial below
0.625, 1 - 2/(exp(2|x|)+1) above). float64 uses libm's exp and tanh, so it stays
within the strict float64 gate. NaN propagates.

Build: `fused.c` beside this module (package data) is compiled at first use with the
system C compiler (`$CC`, else `cc`) with `CFLAGS` (`-O3 -march=native`), into
`fused-<hash>.so` in the harness's cache folder (`lstm_bench.machine.environment.cache_dir()`), the
hash covering the source, the flags, the compiler's version and this CPU's flags, so
a cached library never runs on a CPU it was not built for. `library()` returns None
(and `status()` says why) when fused.c is missing, there is no compiler, the build fails,
torch exports no `sgemm_`/`dgemm_`, or `$LSTM_BENCH_FUSED=0`; the vectorised path then runs
its torch-ops loop. `status()` also reports how long the build took (0 when cached):
that time is spent at the first call, never inside a timed one after a warm-up.

`$LSTM_BENCH_FUSED_MARCH` (e.g. "x86-64-v3") replaces `-march=native` (its own hash, so
its own .so): instruction counting (`lstm_bench.bench.instructions`) sets it in the
callgrind process, because valgrind 3.19 cannot decode the AVX-512 code `-march=native`
emits on an AVX-512 CPU.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...machine.environment import cache_dir  # the harness's one cache folder ($LSTM_BENCH_CACHE_DIR, XDG)

DISABLE_ENV = "LSTM_BENCH_FUSED"
MARCH_ENV = "LSTM_BENCH_FUSED_MARCH"  # replaces -march=native, e.g. "x86-64-v3" (no AVX-512) for valgrind
CFLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu99", "-fopenmp")

SOURCE_PATH = Path(__file__).with_name("fused.c")  # package data (pyproject.toml)
try:
    SOURCE = SOURCE_PATH.read_text(encoding="utf-8")
except OSError:  # an installation without its package data: the torch-ops loop runs (`_load` says why)
    SOURCE = ""

_P = ctypes.c_void_p
_I = ctypes.c_int
_SIGNATURES = {
    "fwd_cell": [_I, _I, _P, _P, _P, _P, _P],
    "bwd_cell": [_I, _I, _P, _P, _P, _P, _P, _P, _P],
    "fwd_loop": [_I, _I, _I, _P, _P, _P, _P, _P],
    "bwd_loop": [_I, _I, _I, _P, _P, _P, _P, _P, _P, _P, _P, _P],
}
_SUFFIX = {torch.float32: "float", torch.float64: "double"}
_GEMM_SYMBOL = {torch.float32: "sgemm_", torch.float64: "dgemm_"}


@dataclass
class Library:
    """The loaded kernels: `fn[(name, dtype)]` ctypes functions, `gemm[dtype]` the BLAS entry point."""

    path: str
    fn: dict
    gemm: dict
    build_seconds: float
    cflags: str = ""  # the flags it was built with (`cflags()`)


_lock = threading.Lock()
_state: dict = {}  # "lib": Library | None, "why": str


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc)


def _blas_info() -> str:
    """torch's build-time BLAS ("mkl", "open", ...), from torch.__config__.show()."""
    m = re.search(r"BLAS_INFO=([A-Za-z0-9_]+)", torch.__config__.show())
    return m.group(1).lower() if m else ""


LP64_BLAS = ("mkl", "open", "openblas")  # linked with 32-bit integers in torch's builds


def _blas_library() -> ctypes.CDLL | None:
    """torch's own CPU library, which exports the BLAS it links (sgemm_, dgemm_)."""
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        p = lib_dir / name
        if p.exists():
            try:
                return ctypes.CDLL(str(p))
            except OSError:
                return None
    return None


def cflags() -> tuple[str, ...]:
    """`CFLAGS`, with `$LSTM_BENCH_FUSED_MARCH` in place of `-march=native` when it is set."""
    march = os.environ.get(MARCH_ENV)
    return tuple(f"-march={march}" if f == "-march=native" and march else f for f in CFLAGS)


def _build(cc: str) -> tuple[Path, float, str]:
    flags = cflags()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256("\0".join([SOURCE, " ".join(flags), version, _cpu_flags()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"fused-{key}.so"
    if target.exists():
        return target, 0.0, " ".join(flags)
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fused.c"
        src.write_text(SOURCE)
        out = Path(tmp) / "fused.so"
        proc = subprocess.run([cc, *flags, str(src), "-o", str(out), "-lm"],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[-500:]}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, partial)
        os.replace(partial, target)  # atomic: concurrent builders never see half a file
    return target, time.perf_counter() - start, " ".join(flags)


def _load() -> tuple[Library | None, str]:
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None, f"${DISABLE_ENV}=0"
    if not SOURCE:
        return None, f"{SOURCE_PATH} is missing from this installation (package data)"
    cc = _compiler()
    if cc is None:
        return None, "no C compiler ($CC or cc) on PATH"
    info = _blas_info()
    if info not in LP64_BLAS:
        return None, f"torch's BLAS is {info or 'unknown'!r}, not one known to take 32-bit integers ({LP64_BLAS})"
    blas = _blas_library()
    if blas is None:
        return None, "torch's libtorch_cpu could not be opened for its BLAS"
    gemm = {}
    for dtype, sym in _GEMM_SYMBOL.items():
        try:
            gemm[dtype] = ctypes.cast(getattr(blas, sym), ctypes.c_void_p).value
        except AttributeError:
            return None, f"torch's libtorch_cpu exports no {sym}"
    try:
        path, seconds, flags = _build(cc)
        so = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        return None, f"build failed: {e}"
    fn = {}
    for name, argtypes in _SIGNATURES.items():
        for dtype, suffix in _SUFFIX.items():
            f = getattr(so, f"{name}_{suffix}")
            f.argtypes, f.restype = argtypes, None
            fn[(name, dtype)] = f
    lib = Library(str(path), fn, gemm, seconds, flags)
    if not _self_test(lib):
        return None, "self-test against torch failed (BLAS interface mismatch?)"
    return lib, ""


def _self_test(lib: Library) -> bool:
    """One tiny forward loop against torch ops: catches a BLAS with another integer width or layout."""
    g = torch.Generator().manual_seed(0)
    for dtype in _SUFFIX:
        T, B, H = 2, 3, 5
        W = torch.randn(4 * H, H, generator=g, dtype=torch.float64).to(dtype)
        gates = torch.randn(T, B, 4 * H, generator=g, dtype=torch.float64).to(dtype)
        h = torch.zeros(T + 1, B, H, dtype=dtype)
        c = torch.zeros(T + 1, B, H, dtype=dtype)
        h[0] = torch.randn(B, H, generator=g, dtype=torch.float64).to(dtype)
        expected = gates[0] + h[0] @ W.T
        z = gates.clone()
        lib.fn[("fwd_loop", dtype)](T, B, H, z.data_ptr(), h.data_ptr(), c.data_ptr(), W.data_ptr(),
                                    lib.gemm[dtype])
        i, f, gg, o = expected.chunk(4, dim=1)
        want = torch.cat([i.sigmoid(), f.sigmoid(), gg.tanh(), o.sigmoid()], dim=1)
        if not torch.allclose(z[0], want, rtol=1e-4, atol=1e-5):
            return False
    return True


def library() -> Library | None:
    """The compiled kernels (built or loaded once per process), or None if unavailable."""
    with _lock:
        if "lib" not in _state:
            try:
                _state["lib"], _state["why"] = _load()
            except Exception as e:  # never let an optional accelerator break the path
                _state["lib"], _state["why"] = None, f"{type(e).__name__}: {e}"
        return _state["lib"]


def status() -> dict:
    """What `library()` gave: available, why not, build seconds (0 when cached), the .so path, the flags."""
    lib = library()
    return {"available": lib is not None, "why": _state.get("why", ""),
            "build_seconds": lib.build_seconds if lib else None, "path": lib.path if lib else None,
            "cflags": lib.cflags if lib else None}


def reset() -> None:
    """Forget the loaded library (tests: to see the fallback, or a rebuild)."""
    with _lock:
        _state.clear()


def supports_dtype(dtype: torch.dtype) -> bool:
    """Whether the kernels exist for `dtype` (float32, float64; CPU tensors)."""
    return dtype in _SUFFIX
