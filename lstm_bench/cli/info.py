"""`lstm-bench info`: the environment a result is recorded with (`lstm_bench.machine.environment.environment`),
and which of the shipped adapters of other libraries can run here."""
from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
from typing import Any

from ..core.contract import check_dtype
from ..core.devices import check_device
from ..core.registry import SHIPPED_ADAPTERS
from ..core.support import dtype_name
from ..machine.environment import environment
from ..machine.peak import peaks
from ..machine.timing import set_threads
from .args import EXIT_OK, add_threads
from .output import table


def flat_items(env: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested keys joined with dots: {"backends": {"cudnn": {...}}} -> ("backends.cudnn.version", ...)."""
    out: list[tuple[str, Any]] = []
    for key, val in env.items():
        name = f"{prefix}.{key}" if prefix else key
        out += flat_items(val, name) if isinstance(val, dict) else [(name, val)]
    return out


def shipped_adapters() -> dict[str, str]:
    """Each shipped adapter's short name -> the versions of the libraries it needs, or what to install."""
    status = {}
    for name, shipped in SHIPPED_ADAPTERS.items():
        absent = [m for m in shipped.needs if importlib.util.find_spec(m) is None]
        if absent:
            status[name] = f"not installed ({', '.join(absent)}): pip install \"lstm-bench[{shipped.extra}]\""
        else:
            status[name] = ", ".join(f"{m} {_version(m)}" for m in shipped.needs)
    return status


def _version(module: str) -> str:
    """The installed version of the distribution that provides `module` ("?" when it has no metadata)."""
    for dist in _distributions().get(module, [module]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    # Reads every installed distribution's file list: 0.33 s a call with the adapters' libraries
    # installed (AMD EPYC), 4.6 s of `lstm-bench info` when it was called once per library.
    return importlib.metadata.packages_distributions()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="the environment a result is recorded with")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-peak", action="store_true", help="do not measure (or read) the matmul peak")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    add_threads(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_device(args.device)
    dtype = dtype_name(check_dtype(args.dtype))
    threads = set_threads(args.threads)
    env = environment(threads=threads)
    if not args.no_peak:
        env["matmul_peak_gflops"] = peaks([(args.device, dtype)], threads)
    env["shipped_adapters"] = shipped_adapters()
    if args.json:
        print(json.dumps(env, indent=1))
    else:
        print(table(["field", "value"], flat_items(env), left=2))
    return EXIT_OK
