"""`lstm-bench plot RESULTS`: PNG charts of a sweep (`lstm_bench.bench.plots`).

The charts go to --out-dir, which must not hold charts already (refused before anything is
drawn), or by default to a new folder next to the file: RESULTS-plots/, else RESULTS-plots-2/,
-3/, ... (an earlier run's plots are never replaced). Exit 5 when nothing could be drawn.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench.plots import CHARTS, occupied_charts, plot_results
from ..bench.results import ResultsError, check_new_output, load
from .args import EXIT_NOTHING, EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG charts of a results file")
    p.add_argument("results", help="a results file of lstm-bench bench")
    p.add_argument("--out-dir", help="where the PNGs go: a new folder, or one without charts in it (default: "
                                     "RESULTS-plots/ next to the file, else the first free RESULTS-plots-N/)")
    p.set_defaults(func=run)


def new_plot_dir(results_path: Path) -> Path:
    """RESULTS-plots/ next to the results file, or the first of RESULTS-plots-2/, -3/, ... that does not exist."""
    base = results_path.with_name(results_path.stem + "-plots")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_plot_dir(out_dir: Path) -> Path:
    """`out_dir`, once it is sure the charts can be written there without replacing any."""
    occupied = occupied_charts(out_dir)
    if occupied:
        raise ResultsError(f"{occupied[0]}: already exists (plots are never overwritten); choose another --out-dir")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ResultsError(f"{out_dir}: not a folder; --out-dir needs a folder for {', '.join(CHARTS)}")
        return out_dir
    return check_new_output(out_dir, what="plot folder", hint="choose another --out-dir")


def run(args: argparse.Namespace) -> int:
    results = load(args.results)
    out_dir = check_plot_dir(Path(args.out_dir) if args.out_dir else new_plot_dir(results.path))
    notes: list[str] = []
    written = plot_results(results, out_dir, notes)
    for path in written:
        print(path)
    for note in notes:
        print(note, file=sys.stderr)
    if not written:
        print(f"lstm-bench: nothing was drawn (reasons above); exit {EXIT_NOTHING}", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK
