"""This machine's matrix-multiply peak: the yardstick for "% of peak" in `bench`.

The peak is the best GEMM rate the machine offers for a device and dtype, not one
library's: on the CPU the better of MKL's (`torch.mm` on dense tensors) and oneDNN's
(`torch._C._nn.mkldnn_linear` on oneDNN tensors), which differ by up to 1.8x on the
same machine (measured on an AMD EPYC with AVX-512: MKL ~205-220 GFLOP/s, oneDNN ~370,
on 2 threads; oneDNN's LSTM reached 330-360, so an MKL-only yardstick put `nn_lstm` at
111-124 % "of peak"); on CUDA cuBLAS (`torch.mm`). Each candidate times square (N, N)
products and the grid's largest input-projection GEMM, 2 m k n FLOPs each (the counting
rule of `lstm_bench.bench.flops`), with the project's timing loop, best of a few repeats, and
stops growing N once one call would exceed the time budget (a few seconds in all).

On CUDA, float32 has two candidates: cuBLAS in true float32 (TF32 off) and, when TF32 is
allowed for matmuls or cuDNN at the time (`tf32_allowed`; torch leaves cuDNN's on by
default, and cuDNN's LSTM then runs its GEMMs in TF32), cuBLAS in TF32 ("cublas-tf32"): the
peak is the better one, so that a float32 LSTM running on TF32 tensor cores is never above
100 %. `gpu_peaks` measures the four rates a GPU report names (float32, TF32, bfloat16,
float16) apart. GEMMs are timed warm (no L2 flush): the peak is the best rate reachable.

A dtype whose GEMM this device does not run natively gets no peak, with the reason,
decided by capability, never by letting an emulated GEMM run for minutes: on the CPU
float16 needs AVX512-FP16, AVX-NE-CONVERT or AMX-FP16 and bfloat16 AVX512-BF16,
AVX-NE-CONVERT or AMX-BF16 (the instructions oneDNN itself requires; without them a
2048^2 float16 matmul took 65 s here); float8 and integer types have no plain matmul.

Measured once and cached in `$LSTM_BENCH_CACHE_DIR` (default `$XDG_CACHE_HOME/lstm-bench`
or `~/.cache/lstm-bench`), keyed by host, CPU, GPU, torch version, threads, device,
dtype and `PEAK_VERSION` (so the MKL-only peaks of lstm-bench 0.1 are never reused).
A figure measured while the machine was loaded is not cached. `matmul_peak(...,
refresh=True)` measures again and keeps the better of the two: a peak measured under
load is too low, and `measure.impossible_reason` asks for that before it calls a timing
impossible.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from ..core.contract import check_dtype
from ..core.devices import check_device, tf32
from ..core.support import dtype_name
from .environment import cache_dir, cpu_name, gpu_name
from .load import LoadProbe
from .timing import set_threads, time_fn

PEAK_VERSION = 2  # 1: torch.mm only (lstm-bench 0.1); 2: best of the libraries, capability checked
# (CUDA float32 keys also hold the TF32 state: no CUDA peak was ever cached before it)
PEAK_SIZES = {"cpu": (256, 512, 1024, 2048), "cuda": (2048, 4096, 8192)}
PEAK_REPEATS = 3
BUDGET_S = 4.0  # per device and dtype, all libraries and shapes together
CPU_NATIVE = {  # dtype -> CPU features any one of which makes its GEMM native (oneDNN's own test)
    "float32": (), "float64": (),
    "bfloat16": ("avx512_bf16", "amx_bf16", "avx_ne_convert"),
    "float16": ("avx512_fp16", "amx_fp16", "avx_ne_convert"),
}
CUDA_NATIVE = ("float32", "float64", "float16", "bfloat16")


def tf32_allowed() -> bool:
    """Whether TF32 may run in float32 work on CUDA now (matmuls or cuDNN); False without CUDA."""
    return torch.cuda.is_available() and bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def peak_key(device: str, dtype: str, threads: int) -> str:
    """Cache key: one entry per machine, torch version, thread count, device, dtype, TF32 state and peak method."""
    ident = [socket.gethostname(), cpu_name(), gpu_name() if device == "cuda" else None,
             torch.__version__, threads, device, dtype, PEAK_VERSION]
    if device == "cuda" and dtype == "float32":
        ident.append(tf32_allowed())
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]
    return f"v{PEAK_VERSION}-{device}-{dtype}-t{threads}-{digest}"


def cpu_features() -> dict[str, bool]:
    """The CPU's capability flags as torch's cpuinfo sees them (empty where torch cannot say)."""
    get = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    try:
        caps = get() if get is not None else {}
    except Exception:  # an old torch: no flags, every reduced-precision dtype counts as unsupported
        caps = {}
    return {k: bool(v) for k, v in caps.items() if isinstance(v, bool)}


def no_peak_reason(device: str, dtype: str) -> str | None:
    """Why `dtype` has no GEMM peak on `device` (emulated or unsupported), or None when it has one."""
    if device == "cuda":
        return None if dtype in CUDA_NATIVE else f"torch has no plain matmul for {dtype} on cuda"
    if dtype not in CPU_NATIVE:
        return f"torch has no plain matmul for {dtype} on the cpu"
    needs = CPU_NATIVE[dtype]
    if needs and not any(cpu_features().get(f) for f in needs):
        return (f"{dtype} GEMM is emulated on this CPU (none of {', '.join(needs)}): far below any native "
                f"figure, and minutes to measure")
    return None


@dataclass
class Peak:
    """The best GEMM rate for one device and dtype, or why there is none (`gflops` None)."""

    device: str
    dtype: str
    gflops: float | None
    library: str = ""  # the library that reached it
    shape: tuple[int, int, int] | None = None  # (m, k, n) of that GEMM
    libraries: dict[str, float] = field(default_factory=dict)  # best per library; a failed one is absent
    reason: str = ""  # no peak: why
    seconds: float = 0.0  # how long measuring took

    def to_json(self) -> dict:
        return {"device": self.device, "dtype": self.dtype, "gflops": self.gflops, "library": self.library,
                "shape": list(self.shape) if self.shape else None, "libraries": self.libraries,
                "reason": self.reason, "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict) -> "Peak":
        shape = d.get("shape")
        return cls(d["device"], d["dtype"], d.get("gflops"), d.get("library", ""),
                   tuple(shape) if shape else None, dict(d.get("libraries") or {}), d.get("reason", ""),
                   float(d.get("seconds") or 0.0))


def _in_tf32(enabled: bool, call: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with tf32(enabled):
            return call()
    return run


def cuda_float32_libraries(use_tf32: bool | None = None) -> dict[str, bool]:
    """The float32 GEMM candidates on CUDA, name -> TF32 on: "cublas" (true float32) unless `use_tf32`
    is True, and "cublas-tf32" when `use_tf32` is True, or None while `tf32_allowed()`."""
    out = {} if use_tf32 else {"cublas": False}
    if use_tf32 or (use_tf32 is None and tf32_allowed()):
        out["cublas-tf32"] = True
    return out


def _gemm_calls(device: str, tdtype: torch.dtype, m: int, k: int, n: int,
                use_tf32: bool | None = None) -> dict[str, Callable[[], object]]:
    """Per library, a callable that does one (m, k) @ (k, n) product (2 m k n FLOPs); CUDA float32:
    `cuda_float32_libraries`."""
    dev = torch.device(device)
    a = torch.randn(m, k, device=dev).to(tdtype)
    b = torch.randn(k, n, device=dev).to(tdtype)
    out = torch.empty(m, n, dtype=tdtype, device=dev)
    mm = lambda: torch.mm(a, b, out=out)  # noqa: E731
    if device == "cuda" and tdtype == torch.float32:
        return {name: _in_tf32(on, mm) for name, on in cuda_float32_libraries(use_tf32).items()}
    calls: dict[str, Callable[[], object]] = {"cublas" if device == "cuda" else "mkl": mm}
    if device == "cpu" and torch.backends.mkldnn.is_available():
        try:
            am, wm = a.to_mkldnn(), b.t().contiguous().to_mkldnn()  # linear: a @ w.T, w (n, k)
            torch._C._nn.mkldnn_linear(am, wm)
            calls["onednn"] = lambda: torch._C._nn.mkldnn_linear(am, wm)
        except (RuntimeError, AttributeError, TypeError):
            pass  # this dtype or build has no oneDNN GEMM: MKL alone
    return calls


def measure_peak(device: str = "cpu", dtype: str = "float32", *, shapes: Sequence[tuple[int, int, int]] = (),
                 budget: float = BUDGET_S, use_tf32: bool | None = None) -> Peak:
    """Best GEMM rate over the libraries and shapes, under the current thread count, within `budget` seconds.

    Square sizes first (smallest first); a size is skipped when the library's best rate so
    far predicts that one call of it would take more than 1/(4 (repeats + 1)) of the budget.
    `use_tf32` (CUDA float32): True TF32 only, False true float32 only, None as `_gemm_calls`."""
    dev = check_device(device)
    tdtype = check_dtype(dtype)
    dtype = dtype_name(tdtype)
    reason = no_peak_reason(dev.type, dtype)
    if reason:
        return Peak(dev.type, dtype, None, reason=reason)
    t0 = time.perf_counter()
    per_call_cap = budget / (4 * (PEAK_REPEATS + 1))
    best: dict[str, tuple[float, tuple[int, int, int]]] = {}
    seconds_per_flop: dict[str, float] = {}
    candidates = [(s, s, s) for s in PEAK_SIZES[dev.type]] + sorted(set(shapes), key=lambda x: x[0] * x[1] * x[2])
    for shape in candidates:
        flops = 2 * shape[0] * shape[1] * shape[2]
        if time.perf_counter() - t0 > budget:
            break
        calls = _gemm_calls(dev.type, tdtype, *shape, use_tf32=use_tf32)
        for library, call in calls.items():
            if flops * seconds_per_flop.get(library, 0.0) > per_call_cap:
                continue
            try:
                times = time_fn(call, device=dev.type, repeats=PEAK_REPEATS, warmup=1, cache="warm")
            except RuntimeError:
                continue
            rate = flops / min(times) / 1e9
            # predict the next size from the best rate seen: a slow sample is the machine's load
            seconds_per_flop[library] = min(seconds_per_flop.get(library, math.inf), min(times) / flops)
            if rate > best.get(library, (0.0, shape))[0]:
                best[library] = (rate, shape)
    if not best:
        return Peak(dev.type, dtype, None, reason=f"no GEMM ran for {dtype} on {dev.type}",
                    seconds=time.perf_counter() - t0)
    library, (gflops, shape) = max(best.items(), key=lambda kv: kv[1][0])
    return Peak(dev.type, dtype, gflops, library, shape, {k: v[0] for k, v in best.items()},
                seconds=time.perf_counter() - t0)


def _read_cache(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError as err:
        print(f"lstm-bench: warning: cannot cache the matmul peak in {path} ({err.strerror})", file=sys.stderr)


def matmul_peak(device: str = "cpu", dtype: str = "float32", *, threads: int | None = None, refresh: bool = False,
                shapes: Sequence[tuple[int, int, int]] = ()) -> Peak:
    """This machine's GEMM peak for `device` and `dtype`, from the cache or measured (and cached when quiet).

    `refresh` measures again and keeps the better of the new and the cached figure."""

    threads = set_threads(threads)
    dtype = dtype_name(check_dtype(dtype))
    key = peak_key(device, dtype, threads)
    path = cache_dir() / "matmul_peak.json"
    cache = _read_cache(path)
    entry = cache.get(key)
    cached = None
    if isinstance(entry, dict) and "peak" in entry:
        try:
            cached = Peak.from_json(entry["peak"])
        except (KeyError, TypeError, ValueError):
            cached = None
    if cached is not None and not refresh:
        return cached
    probe = LoadProbe.start()
    peak = measure_peak(device, dtype, shapes=shapes)
    load = probe.stop(threads)
    if cached is not None and cached.gflops is not None and (peak.gflops or 0) < cached.gflops:
        peak = cached
    if load.under_load and peak is not cached and peak.gflops is not None:
        print(f"lstm-bench: warning: the {device}/{dtype} matmul peak was measured under load ({load.describe()}); "
              f"not cached, and % of peak may read high", file=sys.stderr)
        return peak
    cache[key] = {"peak": peak.to_json(), "threads": threads, "torch": torch.__version__, "cpu": cpu_name(),
                  "gpu": gpu_name(), "load": load.to_json()}
    _write_cache(path, cache)
    return peak


def matmul_peak_gflops(device: str = "cpu", dtype: str = "float32", *, threads: int | None = None,
                       refresh: bool = False) -> float | None:
    """The peak's GFLOP/s (`matmul_peak`), or None when this dtype has no native GEMM here."""
    return matmul_peak(device, dtype, threads=threads, refresh=refresh).gflops


def grid_shapes(points: Iterable) -> dict[tuple[str, str], list[tuple[int, int, int]]]:
    """Per (device, dtype), the largest input-projection GEMM of the points: (T B, I) @ (I, 4H)."""
    out: dict[tuple[str, str], tuple[int, int, int]] = {}
    for p in points:
        shape = (p.T * p.B, p.I, 4 * p.H)
        key = (p.device, p.dtype)
        if key not in out or math.prod(shape) > math.prod(out[key]):
            out[key] = shape
    return {k: [v] for k, v in out.items()}


def header_key(device: str, dtype: str) -> str:
    """How a peak is named in `peak_details` and a results file's header: "cpu/float32"."""
    return f"{device}/{dtype}"


def peak_details(pairs, threads: int | None = None, *, points: Iterable = ()) -> dict[str, Peak]:
    """{"device/dtype": matmul_peak(device, dtype)} for each (device, dtype) in `pairs`; `points` adds
    their largest input-projection GEMM to the shapes tried."""
    shapes = grid_shapes(points)
    return {header_key(d, t): matmul_peak(d, t, threads=threads, shapes=shapes.get((d, t), ()))
            for d, t in sorted(set(pairs))}


def peaks(pairs, threads: int | None = None, *, points: Iterable = ()) -> dict[str, float | None]:
    """{"device/dtype": GFLOP/s or None (no native GEMM)} for each (device, dtype) in `pairs`."""
    return {k: p.gflops for k, p in peak_details(pairs, threads, points=points).items()}


GPU_PEAK_MODES = ("float32", "tf32", "bfloat16", "float16")


def gpu_peaks(device: str = "cuda", *, shapes: Sequence[tuple[int, int, int]] = (),
              budget: float = BUDGET_S) -> dict[str, Peak]:
    """The GPU's cuBLAS peak per mode of `GPU_PEAK_MODES`, measured now (not cached): float32 with TF32
    off, TF32 (a float32 GEMM with TF32 on), bfloat16 and float16; `shapes` adds same-shape GEMMs."""
    out = {"float32": measure_peak(device, "float32", shapes=shapes, budget=budget, use_tf32=False),
           "tf32": measure_peak(device, "float32", shapes=shapes, budget=budget, use_tf32=True)}
    for dtype in ("bfloat16", "float16"):
        out[dtype] = measure_peak(device, dtype, shapes=shapes, budget=budget)
    return out
