"""`lstm-bench report RESULTS... --format markdown|html [--out FILE]`: sweeps and comparisons for people.

Each RESULTS is a results file (or a directory of them, or a comma-separated list), or
the JSON of `lstm-bench compare --json` / `ab --json`. Results files are reported per
machine (`lstm_bench.report.fleet.by_machine`), never pooled. markdown: short enough for
a pull-request comment (`lstm_bench.report.markdown`); html: one self-contained page with
the plots embedded (`lstm_bench.report.html`). `--leaderboard`: results files as
leaderboards (`lstm_bench.report.leaderboard`: per point, the implementations ranked by time
among those that pass the tolerance policy), markdown. Exit 0; 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..bench.results import ResultsError, ResultsFile, load_many
from ..report.html import render_html
from ..report.leaderboard import LEADERBOARD_HEADERS, SUMMARY_HEADERS, leaderboard_rows, render_leaderboard_markdown
from ..report.markdown import render_markdown, render_sweeps_markdown
from .args import EXIT_OK, UsageError, check_new_file
from .output import emit, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a markdown (pull request) or HTML (plots embedded) report of sweeps and "
                                      "comparisons")
    p.add_argument("results", nargs="+", help="results files (or directories, comma lists) and compare/ab --json files")
    p.add_argument("--format", choices=["markdown", "html"], default="markdown")
    p.add_argument("--out", metavar="FILE", help="write to this new file instead of stdout (never overwritten)")
    p.add_argument("--leaderboard", action="store_true",
                   help="results files as leaderboards (markdown): per point, the implementations ranked by time among "
                        "those that pass the tolerance policy, with spread, ratio to the fastest, %% of peak, verdict")
    p.set_defaults(func=run)


def leaderboard_text(results: ResultsFile) -> str:
    """The leaderboard of one results file for the terminal: the per-implementation summary, the
    per-point table, then what the columns mean (`lstm_bench.report.leaderboard`)."""
    summary, rows, notes = leaderboard_rows(results)
    if not rows:
        return "(no point in the file)"
    return "\n".join([table(SUMMARY_HEADERS, summary), "", table(LEADERBOARD_HEADERS, rows, left=(0, 2, -1))]
                     + notes)


def _comparison(path: Path) -> dict | list | None:
    """The JSON of compare/ab --json in `path`, or None when it is not one (a results file)."""
    if path.is_dir() or path.suffix == ".jsonl":
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, list) or (isinstance(data, dict) and "verdicts" in data):
        return data
    return None


def gather(specs: list[str]) -> tuple[list[ResultsFile], list[tuple[str, dict | list]]]:
    results: list[ResultsFile] = []
    comparisons: list[tuple[str, dict | list]] = []
    for spec in specs:
        data = _comparison(Path(spec))
        if data is not None:
            render_markdown(data)  # validates: ValueError naming what is wrong
            comparisons.append((Path(spec).name, data))
        else:
            try:
                results += load_many(spec)
            except ResultsError as err:
                raise ResultsError(f"{err} (nor is it the JSON of compare/ab --json)") from None
    return results, comparisons


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_new_file(args.out, "--out")
    results, comparisons = gather(args.results)
    if args.leaderboard:
        if comparisons or args.format != "markdown":
            raise UsageError("--leaderboard reports results files of `lstm-bench bench` as markdown: "
                             + ("drop --format html" if args.format != "markdown" else
                                f"{comparisons[0][0]} is the JSON of compare/ab"))
        emit(render_leaderboard_markdown(results), args.out)
        return EXIT_OK
    if args.format == "html":
        text = render_html(results, comparisons)
    else:
        parts = [render_markdown(data) for _, data in comparisons]
        if results:
            parts.append(render_sweeps_markdown(results))
        text = "\n".join(parts)
    emit(text, args.out)
    return EXIT_OK
