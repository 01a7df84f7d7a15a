"""Markdown reports short enough for a pull-request comment: a comparison's verdicts, or sweeps per machine.

`render_markdown(verdict_json)` takes what `lstm-bench compare --json` and `lstm-bench ab
--json` write (a list of verdicts, or an object with "verdicts", and for `ab` its
"runs"), plus the optional keys the commands add for --markdown ("machines",
"across_machines", "broken", "missing_in_new"). It starts with a link-free summary:
the regressions, the points that failed in NEW, the inconclusive points (no
significant slowdown, but the noise would have hidden one of the threshold's size:
their detectable slowdown exceeds the threshold), and the noisy ones; then the machine,
then a table, regressions first, cut at `MAX_ROWS` rows. GitHub cuts a comment at
65536 characters; the table's cut keeps a report of any size under it.

`render_sweeps_markdown(results)` does the same for results files: one section per
hardware fingerprint (`lstm_bench.machine.fingerprint`), never one table over two machines.
"""
from __future__ import annotations

import math
import os
from typing import Any

from ..bench.records import PointRecord
from ..bench.results import ResultsFile
from ..bench.spread import NOISY_SPREAD, is_noisy, quartiles
from ..machine.fingerprint import describe
from .fleet import by_machine

MAX_ROWS = 40
DEFAULT_THRESHOLD = 0.05  # compare's and ab's default --threshold, for a bare list of verdicts


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:+.{digits}f}%"


def _plain_pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}%"


def seconds_text(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _label(key: str) -> str:
    """A point key "impl|T=10|B=1|I=64|H=64|cpu|float32" as "impl T=10 B=1 I=64 H=64 cpu float32"."""
    return " ".join(key.split("|"))


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def inconclusive(v: dict, threshold: float) -> bool:
    """No significant slowdown, yet the noise would hide one of `threshold` (detectable above it, or unknown)."""
    if v.get("verdict") == "inconclusive":
        return True
    if v.get("regression") or v.get("verdict") != "no change":
        return False
    d = v.get("detectable")
    return d is None or (isinstance(d, (int, float)) and d > threshold)


def _noisy(v: dict) -> bool:
    if "noisy" in v:
        return bool(v["noisy"])
    spreads = [s for s in (v.get("spread_base"), v.get("spread_new")) if isinstance(s, (int, float))]
    return bool(spreads) and max(spreads) > NOISY_SPREAD


def _failed_in_new(data: dict) -> list[str]:
    failed = list(data.get("broken") or [])
    for run in data.get("runs") or []:
        if run.get("new_error"):
            p = run.get("point") or {}
            key = "|".join(str(p.get(k)) if k in ("impl", "device", "dtype") else f"{k}={p.get(k)}"
                           for k in ("impl", "T", "B", "I", "H", "device", "dtype"))
            failed.append(f"{key}: {run['new_error']}")
    return failed


def render_markdown(verdict_json: dict | list) -> str:
    """The markdown report of a comparison (module docstring); ValueError when it holds no verdicts list."""
    data = {"verdicts": verdict_json} if isinstance(verdict_json, list) else dict(verdict_json)
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, list) or not all(isinstance(v, dict) and "key" in v for v in verdicts):
        raise ValueError("not the JSON of `lstm-bench compare --json` or `ab --json`: no list of verdicts")
    threshold = float(data.get("threshold") or DEFAULT_THRESHOLD)
    alpha = data.get("alpha", 0.05)
    what = "ab (interleaved A/B)" if data.get("kind") == "lstm-bench-ab" else "compare"
    # The JSON of version 2 (`SpeedVerdict.to_json`) gives each point its outcome: it decides.
    outcomes = {p["key"]: p for p in data.get("points") or [] if isinstance(p, dict) and "key" in p}
    if outcomes:
        verdicts = [dict(v) for v in verdicts]  # the caller's JSON stays as it was
        for v in verdicts:
            v.update(regression=outcomes.get(v["key"], {}).get("outcome") == "regression",
                         verdict=outcomes.get(v["key"], {}).get("outcome", v.get("verdict")))
    regressions = [v for v in verdicts if v.get("regression")]
    unsure = [v for v in verdicts if inconclusive(v, threshold)]
    noisy = [v for v in verdicts if _noisy(v)]
    failed = _failed_in_new(data) + [f"{k}: {p.get('reason', '')}" for k, p in outcomes.items()
                                     if p.get("outcome") == "failed"]
    missing = list(data.get("missing_in_new") or [])
    bad = bool(regressions or failed)
    head = (f"**lstm-bench {what}: {len(regressions)} regression(s)" + (f", {len(failed)} failed in NEW" if failed else "")
            + "**" if bad else f"**lstm-bench {what}: no regression**")
    lines = [head + f" over {len(verdicts)} point(s) (NEW/BASE time; a regression is significantly slower, "
             f"alpha {alpha}, by more than {_plain_pct(threshold)})", ""]
    if data.get("across_machines"):
        lines += [f"> ACROSS MACHINES (--across-machines): {data['across_machines']}", ""]
    for v in regressions:
        lines.append(f"- Regression: `{_label(v['key'])}` {_pct(v['ratio'] - 1)} "
                     f"(95% CI {_pct(v.get('ci_low', math.nan) - 1)} to {_pct(v.get('ci_high', math.nan) - 1)})")
    lines += [f"- Failed in NEW: `{_label(k)}`" for k in failed]
    lines += [f"- Missing in NEW (measured in BASE): `{_label(k)}`" for k in missing]
    if unsure:
        shown = ", ".join(f"`{_label(v['key'])}` (" + (f"sees {_plain_pct(v['detectable'])}" if v.get("detectable")
                                                        is not None else "too few repeats to see any") + ")"
                          for v in unsure[:5])
        lines.append(f"- Inconclusive: {len(unsure)} point(s) where a {_plain_pct(threshold)} slowdown would not "
                     f"have been seen at the noise measured: {shown}" + (" ..." if len(unsure) > 5 else ""))
    else:
        lines.append(f"- Inconclusive: none (no point without a slowdown found hid one of {_plain_pct(threshold)})")
    lines.append(f"- Noise: {len(noisy)} of {len(verdicts)} point(s) NOISY (repeats spread by more than "
                 f"{_plain_pct(NOISY_SPREAD)}, IQR/median)")
    machines = data.get("machines") or {}
    if machines:
        base, new = machines.get("base"), machines.get("new")
        lines.append(f"- Machine: {describe(base)}" if base == new or new is None else
                     f"- Machines: BASE {describe(base)}; NEW {describe(new)}")
    order = sorted(verdicts, key=lambda v: (not v.get("regression"), v.get("verdict") != "slower",
                                            not inconclusive(v, threshold), -(v.get("ratio") or 0)))
    rows = [[_label(v["key"]), seconds_text(v.get("base_median")), seconds_text(v.get("new_median")),
             f"{v['ratio']:.3f}" if isinstance(v.get("ratio"), (int, float)) else "-",
             f"[{v.get('ci_low', math.nan):.3f}, {v.get('ci_high', math.nan):.3f}]"
             if isinstance(v.get("ci_low"), (int, float)) and isinstance(v.get("ci_high"), (int, float)) else "-",
             _plain_pct(v.get("detectable")), "NOISY" if _noisy(v) else "",
             ("REGRESSION" if v.get("regression") else "inconclusive" if inconclusive(v, threshold)
              else v.get("verdict", "-"))] for v in order[:MAX_ROWS]]
    lines += ["", *markdown_table(["point", "base", "new", "new/base", "95% CI", "detectable", "noise", "verdict"], rows)]
    if len(order) > MAX_ROWS:
        lines.append(f"\n{len(order) - MAX_ROWS} more point(s) not shown (none a regression); the JSON has them all.")
    return "\n".join(lines) + "\n"


def _sweep_rows(records: list[PointRecord]) -> list[list[Any]]:
    rows = []
    for rec in records:
        p, m = rec.point, rec.measurement
        base = [p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype, p.variant.label]
        if m is None:
            rows.append(base + ["-", "-", "-", "-", f"{rec.status}: {(rec.error or rec.reason)[:80]}"])
            continue
        q1, med, q3 = quartiles(m.forward_backward_s)
        spread = (q3 - q1) / med
        rows.append(base + [seconds_text(med), f"{100 * spread:.0f}%" + (" NOISY" if spread > NOISY_SPREAD else ""),
                            f"{rec.gflops:.3g}", f"{m.peak_bytes / 2 ** 20:.1f} MiB" if m.peak_bytes else "-", "ok"])
    return rows


def sweep_summary(results: list[ResultsFile]) -> list[str]:
    """One line per machine: points measured, failed, skipped, noisy."""
    lines = []
    for files in by_machine(results).values():
        recs = [r for f in files for r in f.by_key().values()]
        ok = [r for r in recs if r.status == "ok"]
        noisy = sum(is_noisy(r.measurement.forward_backward_s) for r in ok)
        lines.append(f"- {describe(files[0].fingerprint)}: {len(ok)} point(s) measured, "
                     f"{sum(r.status == 'failed' for r in recs)} failed, {sum(r.status == 'skipped' for r in recs)} "
                     f"skipped, {noisy} NOISY (IQR/median above {_plain_pct(NOISY_SPREAD)}); "
                     f"{len(files)} file(s), torch {files[0].env.get('torch')}, commit {files[0].env.get('commit')}")
    return lines


def render_sweeps_markdown(results: list[ResultsFile]) -> str:
    """Markdown of results files: a summary line per machine, then a table per machine and file."""
    groups = by_machine(results)
    lines = [f"**lstm-bench sweeps: {len(results)} file(s) from {len(groups)} machine(s)** "
             f"(forward+backward; machines reported apart, never pooled)", "", *sweep_summary(results)]
    headers = ["impl", "T", "B", "I", "H", "device", "dtype", "config", "median", "IQR/median", "GFLOP/s", "peak",
               "status"]
    for files in groups.values():
        lines += ["", f"### {describe(files[0].fingerprint)}"]
        for res in files:
            recs = list(res.by_key().values())
            lines += ["", f"`{res.path.name}` ({res.header.get('created', '')})", ""]
            lines += markdown_table(headers, _sweep_rows(recs[:MAX_ROWS]))
            if len(recs) > MAX_ROWS:
                lines.append(f"\n{len(recs) - MAX_ROWS} more point(s) not shown (`lstm-bench export --format csv`).")
    return "\n".join(lines) + "\n"


def write_markdown(path: str | os.PathLike, verdict_json: dict | list) -> None:
    """`render_markdown` into a new file (O_EXCL: an existing report is never overwritten)."""
    text = render_markdown(verdict_json)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
