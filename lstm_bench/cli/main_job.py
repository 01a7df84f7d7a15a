"""`lstm-bench` with no command: the main job.

An agreement check of every available implementation (`check` at its default size, on
every device here), then a quick sweep of QUICK_GRID (`bench --quick`), both as tables.
The sweep's file is kept only with --out.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..bench.grid import QUICK_GRID
from ..bench.sweep import SweepSettings, run_sweep
from ..conformance.cases import CaseSpec
from ..core.devices import available_devices
from ..core.registry import available_impls
from ..impls import COMPILING
from .args import EXIT_FAIL, EXIT_OK, add_threads, positive_int
from .bench import skip_lines, sweep_table
from .check import DEFAULT_SIZES, run_check
from .output import ProgressBar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=positive_int, default=3, help="repeats per point of the quick sweep")
    add_threads(parser)
    parser.add_argument("--out", help="also keep the quick sweep's results in this new file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ok = True
    for device in available_devices():
        print(f"Agreement of every implementation with float64 autograd ({device}, float32, "
              f"{', '.join(f'{k}={v}' for k, v in DEFAULT_SIZES.items())}; lstm-bench check for more cases):")
        ok &= run_check([n for n in available_impls(device) if n not in COMPILING], [CaseSpec(**DEFAULT_SIZES)], device=device, verbose=False,
                        summary=True)[0]
        print()
    settings = SweepSettings(repeats=args.repeats, warmup=1, seed=0, accuracy=True, memory=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "quick.jsonl"
        outcome = run_sweep(QUICK_GRID, out, settings=settings, threads=args.threads, observer=ProgressBar())
    results, counts = outcome.results, outcome.counts
    env = results.env
    print(f"Quick sweep (QUICK_GRID, {args.repeats} repeats, {env['threads']} threads, torch {env['torch']}, "
          f"{env['cpu']}):")
    print(sweep_table(results))
    for line in skip_lines(results.records):
        print(line)
    print(f"\nagreement: {'all PASS' if ok else 'FAILURES above'}; sweep: {counts['ok']} measured, "
          f"{counts['failed']} failed, {counts['skipped']} skipped."
          + (f" Results in {args.out}." if args.out else " Full sweeps: lstm-bench bench --help"))
    return EXIT_OK if ok and not counts["failed"] else EXIT_FAIL
