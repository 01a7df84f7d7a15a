"""The environment a result is recorded with (`environment()`).

It is what `lstm-bench info` prints and what every results file's header holds: torch
and Python versions, backends (cuDNN, oneDNN), the fixed thread count, the CPU's name,
the GPU's identity (`lstm_bench.machine.gpu.gpu_identity`), the project's git commit,
and optionally the matmul peak (`lstm_bench.machine.peak`).
"""
from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
from pathlib import Path

import numpy
import torch

from ..version import __version__
from .gpu import gpu_identity
from .timing import default_threads

CACHE_ENV = "LSTM_BENCH_CACHE_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: lstm_bench/machine/ -> lstm_bench/ -> root


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


def environment(*, threads: int | None = None) -> dict:
    """Everything a result depends on besides the code being measured.

    `threads` defaults to the harness's fixed count (`timing.default_threads`). The
    matmul peak is not here: `lstm_bench.machine.peak.peaks` measures it for the devices and
    dtypes a sweep needs.
    """
    return {
        "lstm_bench": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_identity(),  # None without CUDA; name, SMs, L2, driver, CUDA, cuDNN, TF32, power limit
        "threads": default_threads() if threads is None else threads,
        "backends": backends(),
        "commit": git_commit(),
    }


def cache_dir() -> Path:
    """The harness's cache folder (the matmul peak, the compiled kernels): $LSTM_BENCH_CACHE_DIR, else XDG's."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstm-bench"
