"""`lstm-bench report RESULTS... --format markdown|html [--out FILE]`: sweeps and comparisons for people.

Each RESULTS is a results file (or a directory of them, or a comma-separated list), or
the JSON of `lstm-bench compare --json` / `ab --json`. Results files are reported per
machine (`lstm_bench.report.fleet.by_machine`), never pooled. markdown: short enough for
a pull-request comment (`lstm_bench.report.markdown`); html: one self-contained page with
the plots embedded (`lstm_bench.report.html`). Exit 0; 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..bench.results import ResultsError, ResultsFile, load_many
from ..report.html import render_html
from ..report.markdown import render_markdown, render_sweeps_markdown
from .args import EXIT_OK, check_new_file
from .output import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a markdown (pull request) or HTML (plots embedded) report of sweeps and "
                                      "comparisons")
    p.add_argument("results", nargs="+", help="results files (or directories, comma lists) and compare/ab --json files")
    p.add_argument("--format", choices=["markdown", "html"], default="markdown")
    p.add_argument("--out", metavar="FILE", help="write to this new file instead of stdout (never overwritten)")
    p.set_defaults(func=run)


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
    if args.format == "html":
        text = render_html(results, comparisons)
    else:
        parts = [render_markdown(data) for _, data in comparisons]
        if results:
            parts.append(render_sweeps_markdown(results))
        text = "\n".join(parts)
    emit(text, args.out)
    return EXIT_OK
