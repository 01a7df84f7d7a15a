"""This machine's matrix-multiply peak: the yardstick for "% of peak" in `bench`.

`matmul_peak_gflops()` is the best rate of a square float matmul, 2 N^3 FLOPs for an
(N, N) @ (N, N) product (the counting rule of `lstm_bench.flops`), timed with the
project's one timing loop. It is measured once and cached in `$LSTM_BENCH_CACHE_DIR`
(default `$XDG_CACHE_HOME/lstm-bench` or `~/.cache/lstm-bench`), keyed by host, CPU,
GPU, torch version, threads, device and dtype, so every result says how far it is
from this hardware's limit.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import torch

from .contract import check_dtype
from .devices import check_device
from .machine import cache_dir, cpu_name, gpu_name
from .timing import set_threads, time_fn

PEAK_SIZES = {"cpu": (512, 1024, 2048), "cuda": (2048, 4096, 8192)}
PEAK_REPEATS = 5


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


def peaks(pairs, threads: int | None = None) -> dict[str, float]:
    """{"device/dtype": matmul_peak_gflops(device, dtype)} for each (device, dtype) in `pairs`."""
    return {f"{d}/{t}": matmul_peak_gflops(d, t, threads=threads) for d, t in sorted(set(pairs))}
