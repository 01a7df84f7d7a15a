"""`lstm-bench info`: the environment a result is recorded with (`lstm_bench.machine.environment.environment`)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..core.contract import check_dtype
from ..core.devices import check_device
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
    if args.json:
        print(json.dumps(env, indent=1))
    else:
        print(table(["field", "value"], flat_items(env), left=2))
    return EXIT_OK
