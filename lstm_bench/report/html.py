"""One self-contained HTML page of sweeps and comparisons (`lstm-bench report --format html`).

Everything is in the one file: the styles inline and every plot a base64 PNG in an
<img src="data:image/png;base64,...">, so the page can be kept as a CI artifact or mailed
and still shows its plots offline. Sweeps: one section per hardware fingerprint, with
the summary line, the table of every point and the charts of `lstm_bench.bench.plots`
(time against T and H, memory, ratio to nn_lstm). Comparisons (`compare`/`ab --json`): the
markdown report's summary, then a chart of NEW/BASE per point with its 95 % CI and the
threshold, then the table. matplotlib is imported by `bench.plots.pyplot` (optional dependency).
"""
from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from pathlib import Path

from ..bench.plots import log_ticks, plot_results, pyplot
from ..bench.results import ResultsFile
from ..machine.fingerprint import describe
from .fleet import by_machine
from .markdown import DEFAULT_THRESHOLD, _sweep_rows, inconclusive, render_markdown, sweep_summary

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th{text-align:left}th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
.bad{color:#b00;font-weight:bold}.note{color:#555}h2{border-bottom:2px solid #444}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def markdown_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _lines_to_html(lines: list[str]) -> str:
    items = "".join(f"<li>{html.escape(line.lstrip('- ').replace('`', ''))}</li>" for line in lines if line.strip())
    return f"<ul>{items}</ul>"


def sweep_section(files: list[ResultsFile]) -> str:
    """The section of one machine: its summary, a table and the charts of each of its files."""
    parts = [f"<h2>{html.escape(describe(files[0].fingerprint))}</h2>", _lines_to_html(sweep_summary(files))]
    headers = ["impl", "T", "B", "I", "H", "device", "dtype", "config", "median", "IQR/median", "GFLOP/s", "peak",
               "status"]
    for res in files:
        parts.append(f"<h3>{html.escape(res.path.name)} <span class=note>({html.escape(str(res.header.get('created', '')))}, "
                     f"torch {html.escape(str(res.env.get('torch')))}, commit {html.escape(str(res.env.get('commit')))})"
                     f"</span></h3>")
        parts.append(markdown_table(headers, _sweep_rows(list(res.by_key().values()))))
        if res.ok():
            notes: list[str] = []
            with tempfile.TemporaryDirectory() as tmp:
                for png in plot_results(res, tmp, notes):
                    parts.append(_img(Path(png).read_bytes(), f"{png.name} of {res.path.name}"))
            parts += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    return "\n".join(parts)


def ratio_chart(verdicts: list[dict], threshold: float, title: str) -> bytes:
    """PNG: NEW/BASE per point with its 95 % CI, red for a regression, orange inconclusive, on a log x axis."""
    plt = pyplot()
    from matplotlib.ticker import NullLocator  # matplotlib: optional, imported by pyplot() above

    shown = [v for v in verdicts if all(isinstance(v.get(k), (int, float)) and math.isfinite(v[k]) and v[k] > 0
                                        for k in ("ratio", "ci_low", "ci_high"))]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(shown) + 1.6), layout="constrained")
    for i, v in enumerate(shown):
        colour = "#c00" if v.get("regression") else "#e69500" if inconclusive(v, threshold) else \
            "#2a7" if v.get("verdict") == "faster" else "#456"
        ax.errorbar([v["ratio"]], [i], xerr=[[v["ratio"] - v["ci_low"]], [v["ci_high"] - v["ratio"]]], fmt="o",
                    color=colour, capsize=3)
    ax.set_yticks(range(len(shown)), [" ".join(v["key"].split("|")) for v in shown], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(1.0 + threshold, color="#c00", linewidth=0.8, linestyle=":", label=f"threshold +{100 * threshold:g}%")
    ax.set_xscale("log")
    ends = [x for v in shown for x in (v["ci_low"], v["ci_high"])] + [1.0, 1.0 + threshold]
    ticks = log_ticks(min(ends), max(ends))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("NEW / BASE time (95% CI); right of 1 is slower")
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def comparison_section(name: str, verdict_json: dict | list) -> str:
    data = {"verdicts": verdict_json} if isinstance(verdict_json, list) else verdict_json
    text = render_markdown(data)
    summary = [line for line in text.splitlines() if line.startswith(("- ", "> "))]
    head = text.splitlines()[0].replace("**", "")
    regress = any(v.get("regression") for v in data["verdicts"])
    parts = [f"<h2>Comparison: {html.escape(name)}</h2>", f"<p class={'bad' if regress else 'note'}>{html.escape(head)}</p>",
             _lines_to_html(summary)]
    if data["verdicts"]:
        parts.append(_img(ratio_chart(data["verdicts"], float(data.get("threshold") or DEFAULT_THRESHOLD), name),
                          f"NEW/BASE of {name}"))
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
    if rows:
        parts.append(markdown_table([c.strip() for c in rows[0]], [[c.strip().replace("\\|", "|") for c in r] for r in rows[1:]]))
    return "\n".join(parts)


def render_html(results: list[ResultsFile], comparisons: list[tuple[str, dict | list]] = ()) -> str:
    """The page: comparisons first (what a reviewer looks for), then one section per machine."""
    groups = by_machine(results)
    title = (f"lstm-bench report: {len(comparisons)} comparison(s), {len(results)} results file(s) from "
             f"{len(groups)} machine(s)")
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p class=note>Machines are reported apart (one section per hardware fingerprint), never pooled.</p>"]
    body += [comparison_section(name, data) for name, data in comparisons]
    body += [sweep_section(files) for files in groups.values()]
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
