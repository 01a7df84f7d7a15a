"""`lstm-bench` with no command: the main job.

An agreement check of every available implementation (`check` at its default size, on
every device here), then a quick sweep of QUICK_GRID (`bench --quick`), both as tables.
The sweep's file is kept only with --out (checked before anything runs: an existing file is
refused). Exit codes as every command's (`args.worst` of the two parts): 1 when a check or a
point failed, 5 when the sweep measured nothing, else 0.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..bench.grid import QUICK_GRID
from ..bench.results import check_new_output
from ..bench.sweep import SweepSettings, run_sweep
from ..conformance.cases import CaseSpec
from ..core.devices import available_devices
from ..core.registry import available_impls
from ..impls import COMPILING
from ..machine.timing import set_threads
from .args import EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_OK, add_threads, positive_int, worst
from .bench import NOTHING_MEASURED, exit_code, skip_lines, sweep_table
from .check import DEFAULT_SIZES, run_check
from .output import ProgressBar

REPEATS = 3  # a smoke run: the quick sweep's points are timed, judged and shown, not compared


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=positive_int, default=REPEATS,
                        help=f"timed calls per point of the quick sweep (default {REPEATS})")
    add_threads(parser)
    parser.add_argument("--out", help="also keep the quick sweep's results in this new file (default: not kept; an "
                                      "existing file is refused before anything runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_new_output(args.out)
    set_threads(args.threads)  # the check too: torch's own default is every CPU, busy or not
    check_codes = []
    for device in available_devices():
        print(f"Agreement of every implementation with float64 autograd ({device}, float32, "
              f"{', '.join(f'{k}={v}' for k, v in DEFAULT_SIZES.items())}; lstm-bench check for more cases):")
        checked = run_check([n for n in available_impls(device) if n not in COMPILING], [CaseSpec(**DEFAULT_SIZES)],
                            device=device, verbose=False, summary=True)
        if checked.interrupted:
            return EXIT_INTERRUPTED
        check_codes.append(checked.code)
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
    print(f"\nagreement: {'all PASS' if all(c == EXIT_OK for c in check_codes) else 'FAILURES above'}; sweep: {counts['ok']} measured, "
          f"{counts['failed']} failed, {counts['skipped']} skipped."
          + (f" Results in {args.out}." if args.out else " Full sweeps: lstm-bench bench --help"))
    code = worst(*check_codes, exit_code(outcome))
    if exit_code(outcome) == EXIT_NOTHING:
        print(NOTHING_MEASURED, file=sys.stderr)
    return code
