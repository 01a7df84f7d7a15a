"""The environment a result is recorded with, and this machine's matrix-multiply peak.

`environment()` is what `lstm-bench info` prints and what every results file's header
holds: torch and Python versions, backends (cuDNN, oneDNN), the fixed thread count,
CPU and GPU names, and the project's git commit.

`matmul_peak_gflops()` is the yardstick for "% of peak" in `bench`: the best rate of
a square float matmul, 2 N^3 FLOPs for an (N, N) @ (N, N) product (the counting rule
of `lstm_bench.flops`), timed with the project's one timing loop. It is measured
once and cached in `$LSTM_BENCH_CACHE_DIR` (default `$XDG_CACHE_HOME/lstm-bench` or
`~/.cache/lstm-bench`), keyed by host, CPU, GPU, torch version, threads, device and
dtype, so every result says how far it is from this hardware's limit.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy
import torch

from .contract import check_dtype
from .devices import check_device
from .timing import default_threads, set_threads, time_fn

CACHE_ENV = "LSTM_BENCH_CACHE_DIR"
PEAK_SIZES = {"cpu": (512, 1024, 2048), "cuda": (2048, 4096, 8192)}
PEAK_REPEATS = 5
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """Name of the current CUDA device, or None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.cuda.current_device())


def onednn_version() -> str | None:
    """oneDNN's version as torch reports it in its build configuration, or None."""
    if not torch.backends.mkldnn.is_available():
        return None
    match = re.search(r"(?:oneDNN|MKL-DNN) v([0-9][0-9.]*)", torch.__config__.show())
    return match.group(1) if match else "available"


def backends() -> dict:
    """Which fused LSTM backends exist here and their versions."""
    cudnn_ok = torch.backends.cudnn.is_available()
    return {
        "cudnn": {"available": bool(cudnn_ok), "enabled": bool(torch.backends.cudnn.enabled),
                  "version": torch.backends.cudnn.version() if cudnn_ok else None},
        "onednn": {"available": bool(torch.backends.mkldnn.is_available()),
                   "enabled": bool(torch._C._get_mkldnn_enabled()), "version": onednn_version()},
        "cuda": torch.version.cuda,
        # Timed as torch's defaults leave them (what a user ships); the tests turn TF32 off.
        "tf32": {"cudnn": bool(torch.backends.cudnn.allow_tf32),
                 "matmul": bool(torch.backends.cuda.matmul.allow_tf32)},
    }


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The project's commit (with "+dirty" when files differ), or None outside a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(*, threads: int | None = None, peak: bool = True, device: str = "cpu",
                dtype: str = "float32") -> dict:
    """Everything a result depends on besides the code being measured.

    `threads` defaults to the harness's fixed count (`timing.default_threads`);
    `peak` adds the (cached) matmul peak of `device`/`dtype` as `matmul_peak_gflops`.
    """
    from . import __version__

    threads = default_threads() if threads is None else threads
    env = {
        "lstm_bench": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_name(),
        "threads": threads,
        "backends": backends(),
        "commit": git_commit(),
    }
    if peak:
        env["matmul_peak_gflops"] = {f"{device}/{dtype}": matmul_peak_gflops(device, dtype, threads=threads)}
    return env


def cache_dir() -> Path:
    """Where the measured peak is kept between runs."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstm-bench"


def peak_key(device: str, dtype: str, threads: int) -> str:
    """Cache key: one entry per machine, torch version, thread count, device and dtype."""
    ident = [socket.gethostname(), cpu_name(), gpu_name() if device == "cuda" else None,
             torch.__version__, threads, device, dtype]
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]
    return f"{device}-{dtype}-t{threads}-{digest}"


def measure_matmul_peak(device: str = "cpu", dtype: str = "float32") -> float:
    """Best GFLOP/s of an (N, N) @ (N, N) matmul over a few N, under the current thread count."""
    dev = check_device(device)
    tdtype = check_dtype(dtype)
    best = 0.0
    for n in PEAK_SIZES[dev.type]:
        a = torch.randn(n, n, dtype=tdtype, device=dev)
        b = torch.randn(n, n, dtype=tdtype, device=dev)
        out = torch.empty(n, n, dtype=tdtype, device=dev)
        times = time_fn(lambda: torch.mm(a, b, out=out), device=device, repeats=PEAK_REPEATS, warmup=1)
        best = max(best, 2 * n ** 3 / min(times) / 1e9)
    return best


def matmul_peak_gflops(device: str = "cpu", dtype: str = "float32", *, threads: int | None = None,
                       refresh: bool = False) -> float:
    """This machine's measured matmul peak in GFLOP/s, from the cache or measured once and cached."""
    threads = set_threads(threads)
    key = peak_key(device, dtype, threads)
    path = cache_dir() / "matmul_peak.json"
    cache: dict = {}
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if not refresh and isinstance(entry, dict) and isinstance(entry.get("gflops"), (int, float)):
        return float(entry["gflops"])
    gflops = measure_matmul_peak(device, dtype)
    cache[key] = {"gflops": gflops, "device": device, "dtype": dtype, "threads": threads,
                  "torch": torch.__version__, "cpu": cpu_name(), "gpu": gpu_name()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError as err:
        print(f"lstm-bench: warning: cannot cache the matmul peak in {path} ({err.strerror})", file=sys.stderr)
    return gflops
