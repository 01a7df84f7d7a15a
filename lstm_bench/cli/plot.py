"""`lstm-bench plot RESULTS`: PNG charts of a sweep (`lstm_bench.bench.plots`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench.plots import plot_results
from ..bench.results import load
from .args import EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG charts of a results file")
    p.add_argument("results")
    p.add_argument("--out-dir", help="where the PNGs go (default: RESULTS-plots/ next to the file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = load(args.results)
    out_dir = Path(args.out_dir) if args.out_dir else results.path.with_name(results.path.stem + "-plots")
    notes: list[str] = []
    for path in plot_results(results, out_dir, notes):
        print(path)
    for note in notes:
        print(note, file=sys.stderr)
    return EXIT_OK
