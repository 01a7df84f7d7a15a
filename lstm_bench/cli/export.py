"""`lstm-bench export RESULTS --format bencher|pytorch-v3|csv [--out FILE]`: a sweep for the stores people run.

    bencher      Bencher Metric Format JSON (one machine: one testbed)   lstm_bench.report.bencher
    pytorch-v3   PyTorch's oss_ci_benchmark_v3 records, a JSON list     lstm_bench.report.pytorch_v3
    csv          one row per point and file                            lstm_bench.report.csv_rows

`lstm-bench export --machine [--format json|hash|asv-machine]` prints this machine's
hardware fingerprint instead: the whole of it, its short hash (a Bencher testbed, an
asv machine name), or the `asv machine` flags that name the machine after it.
Output goes to stdout, or to a new --out file (never overwritten). Exit 0, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex

from ..bench.results import load_many
from ..core import strict_json
from ..machine.environment import environment
from ..machine.fingerprint import describe, fingerprint
from ..report.bencher import to_bmf
from ..report.csv_rows import to_csv
from ..report.pytorch_v3 import to_v3
from .args import EXIT_OK, UsageError, add_threads, check_new_file
from .output import emit

FORMATS = ("bencher", "pytorch-v3", "csv")
MACHINE_FORMATS = ("json", "hash", "asv-machine")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a sweep as Bencher BMF JSON, PyTorch v3 records or CSV; or this machine's "
                                      "fingerprint (--machine)")
    p.add_argument("results", nargs="?", help="results file, a directory of them, or a comma-separated list")
    p.add_argument("--format", help=f"with RESULTS: {', '.join(FORMATS)}; with --machine: "
                                    f"{', '.join(MACHINE_FORMATS)} (default json)")
    p.add_argument("--out", metavar="FILE", help="write to this new file instead of stdout (never overwritten)")
    p.add_argument("--repo", default="", help="pytorch-v3: the repository named in dependencies (owner/name)")
    p.add_argument("--machine", action="store_true", help="export this machine's hardware fingerprint instead")
    p.add_argument("--name", help="asv-machine: the machine's label (default: the host's name); the hash is appended")
    add_threads(p)
    p.set_defaults(func=run)


def machine_text(fmt: str, threads: int | None, label: str | None) -> str:
    fp = fingerprint(environment(threads=threads))
    if fmt == "json":
        return json.dumps(fp, indent=1) + "\n"
    if fmt == "hash":
        return fp["hash"] + "\n"
    m = fp["machine"]
    name = f"{label or platform.node() or 'machine'}-{fp['hash']}"
    ram = m["memory_gib"] if m["memory_gib"] == "unknown" else f"{m['memory_gib']}GB"
    args = ["--machine", name, "--os", f"{platform.system()} {platform.release()}", "--arch", platform.machine(),
            "--cpu", describe(fp), "--num_cpu", str(m["cpus"]), "--ram", ram]
    return " ".join(shlex.quote(a) for a in args) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_new_file(args.out, "--out")
    if args.machine:
        if args.results:
            raise UsageError("export: give RESULTS or --machine, not both")
        fmt = args.format or "json"
        if fmt not in MACHINE_FORMATS:
            raise UsageError(f"export --machine: --format must be one of {', '.join(MACHINE_FORMATS)}, got {fmt!r}")
        text = machine_text(fmt, args.threads, args.name)
    else:
        if not args.results:
            raise UsageError("export: RESULTS is required (or --machine for this machine's fingerprint)")
        if args.format not in FORMATS:
            raise UsageError(f"export: --format must be one of {', '.join(FORMATS)}, got {args.format!r}")
        results = load_many(args.results)
        if args.format == "bencher":
            text = strict_json.dumps(to_bmf(results), indent=1) + "\n"
        elif args.format == "pytorch-v3":
            text = strict_json.dumps(to_v3(results, repo=args.repo), indent=1) + "\n"
        else:
            text = to_csv(results)
    emit(text, args.out)
    return EXIT_OK
