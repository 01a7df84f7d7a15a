"""The vectorised path's route decisions, kept on disk so that every process runs the same code.

A probe (`routes.probe`) times the routes of a plain layer at first use. Decided anew in each
process, it read 0.74 and 0.80 ms a step for the two C routes at B = 32, H = 256 on a 2-core
AMD EPYC (issue 20), inside its 0.9 margin, so fresh processes chose differently: an ~8 % swing
between the two sides of `lstm-bench ab`, or between two asv runs, that is not in the code
compared. So a decision is made once per machine and shape and kept in
`<cache_dir()>/vectorised-routes.json` (`lstm_bench.machine.environment.cache_dir()`), keyed by

    machine identity  "<host> | <cpu_name> | torch <version> | <threads> threads | rule <RULE_VERSION>"
                      (the host too, as for the matmul peak: VMs that share a home folder may
                      report the same CPU name, "AMD EPYC" here, on different hardware)
    shape             "<device> <dtype> B=<B> H=<H>"
    candidates        the routes that could run (a compiler or oneDNN gained or lost: probed anew)

Every later process with the same key reads the decision instead of probing. Two processes
probing the same key at once both probe, and the first to store wins: the second takes the
stored route (`keep` under an exclusive lock on `vectorised-routes.json.lock`). Where the file
cannot be written, `keep` returns None and the caller falls back to the fixed rule
(`routes.default_route`), the same in every process. Clear with `clear()` or by deleting the file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

import torch

from ...machine.environment import cache_dir, cpu_name  # the harness's one cache folder; the CPU's name

FILE = "vectorised-routes.json"
RULE_VERSION = 1  # bump when the probe or its margin changes: decisions of the old rule are then ignored


def path() -> Path:
    """Where the decisions are kept."""
    return cache_dir() / FILE


def machine_identity() -> str:
    """What a decision holds for: this CPU, this torch, this thread count, this rule."""
    return (f"{socket.gethostname()} | {cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads"
            f" | rule {RULE_VERSION}")


def key(device: torch.device, dtype: torch.dtype, B: int, H: int, candidates: list[tuple[str, str]]) -> str:
    """The decision's key: machine identity, shape, and the candidate routes (as `gemm-gemm+loop`)."""
    names = ",".join(route_name(r) for r in candidates)
    return f"{machine_identity()} | {device.type} {str(dtype).removeprefix('torch.')} B={B} H={H} | {names}"


def route_name(route: tuple[str, str]) -> str:
    return f"{route[0]}-gemm+{route[1]}"


def _read(p: Path) -> dict:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or corrupt: no decisions (a corrupt file is rewritten)
        return {}
    return data if isinstance(data, dict) else {}


def _route_of(data: dict, k: str, candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
    entry = data.get(k)
    route = entry.get("route") if isinstance(entry, dict) else None
    return next((r for r in candidates if route_name(r) == route), None)


def lookup(k: str, candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The stored route for key `k`, if there is one and it is among `candidates`."""
    return _route_of(_read(path()), k, candidates)


@contextlib.contextmanager
def _locked(p: Path) -> Iterator[None]:
    with open(p.with_name(p.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def keep(k: str, route: tuple[str, str], candidates: list[tuple[str, str]], probe: dict) -> tuple[str, str] | None:
    """Store `route` for `k` unless another process stored one first; return the route now stored
    (theirs or `route`), or None when the file cannot be written."""
    p = path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with _locked(p):
            data = _read(p)
            theirs = _route_of(data, k, candidates)
            if theirs is not None:
                return theirs
            data[k] = {"route": route_name(route), "probe": probe}
            partial = p.with_name(f"{p.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(partial, p)  # atomic: a reader never sees half a file
    except OSError:
        return None
    return route


def clear() -> None:
    """Forget every stored decision (the next process probes again)."""
    with contextlib.suppress(FileNotFoundError):
        path().unlink()
