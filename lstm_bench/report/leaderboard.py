"""The leaderboard of a sweep over several implementations: per point, who is fastest among those that pass.

One group per point (the sizes, device, dtype and configuration: everything but the
implementation), its implementations in this order:

1. those whose result passed the tolerance policy's verdict (err/bound <= 1), ranked by the
   median of their forward+backward repeats: rank 1 is the fastest *passing* implementation,
   and every ratio ("x fastest") is to its time;
2. those measured without a verdict (`bench --no-accuracy`, or no yardstick for the case):
   shown with their time and ratio, never ranked;
3. those that failed: a wrong result (FAIL with its err/bound; inf for NaN/Inf), an error, or
   a record whose time is not a finite number; never ranked, never given a ratio, whatever
   their time (a kernel that returns garbage quickly is not the fastest);
4. those skipped, with the reason.

A forward-only kernel (an inference engine: `Measurement.timed` "forward") that passed is shown
after the ranked ones with its time, unranked and without a ratio: its time is a forward, the
others' a forward and a backward, and ranking the two together would crown the one that does less.

A per-implementation summary comes first: at how many points each is the fastest passing
one, how many it passed, failed, was skipped at, and the geometric mean of its ratio to
the fastest over the points it passed.

    entries(records)                   the groups, as `Entry` rows (no formatting)
    leaderboard_rows(results)          headers and cells of the two tables (a renderer draws them)
    render_leaderboard_markdown(files) markdown, one section per machine (`lstm-bench report --leaderboard`)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..bench.grid import PLAIN, Point
from ..bench.records import Measurement, PointRecord
from ..bench.results import ResultsFile
from ..bench.spread import NOISY_SPREAD, is_noisy, plus_minus
from ..machine.fingerprint import describe
from ..machine.peak import header_key
from .fleet import by_machine
from .markdown import markdown_table, seconds_text

PASS, FAIL, UNJUDGED, SKIPPED = "pass", "FAIL", "not judged", "skipped"


@dataclass(frozen=True)
class Entry:
    """One implementation at one point: its record, its verdict (`PASS`, `FAIL`, `UNJUDGED`, `SKIPPED`)
    with the detail (err/bound, the error, the reason), its rank among the passing ones (1 = fastest;
    None unless it passed) and its time over the fastest passing one's (None unless passed or unjudged)."""

    record: PointRecord
    verdict: str
    detail: str
    rank: int | None = None
    ratio: float | None = None

    @property
    def seconds(self) -> float | None:
        """The median forward+backward time; None when nothing was measured, or a repeat is not a finite time."""
        m = self.record.measurement
        return m.forward_backward_median_s if m is not None and _finite(m.forward_backward_s) else None


def _finite(samples) -> bool:
    return all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in samples)


def group_label(point: Point) -> str:
    """The point without its implementation: "T=25 B=16 I=512 H=512 cpu float32" (+ the configuration)."""
    return (f"T={point.T} B={point.B} I={point.I} H={point.H} {point.device} {point.dtype}"
            + ("" if point.variant == PLAIN else f" {point.variant.label}"))


def _judge(rec: PointRecord) -> tuple[str, str]:
    """(verdict, detail) of one record, from its status and err/bound alone."""
    if rec.status == "skipped":
        return SKIPPED, rec.reason
    bound = rec.err_bound
    if rec.status == "failed":
        return FAIL, (f"err/bound {bound:.3g}" if bound is not None else rec.error.splitlines()[0] if rec.error
                      else "failed")
    m = rec.measurement
    if not _finite(m.forward_backward_s):
        return FAIL, "a repeat's time is not a finite positive number"
    if bound is None:
        return UNJUDGED, m.unjudged_reason or "no verdict recorded: --no-accuracy, or a file of lstm-bench < 0.2"
    if not bound <= 1:  # NaN included: only a verdict that passed passes
        return FAIL, f"err/bound {bound:.3g}"
    return PASS, f"err/bound {bound:.3g}"


_ORDER = {PASS: 0, UNJUDGED: 1, FAIL: 2, SKIPPED: 3}
FORWARD_ONLY = "forward only: its time is a forward, not ranked against forward+backward times"


def _ranked(rec: PointRecord, verdict: str) -> bool:
    """Passed, and timed as the others are (a forward and a backward): what the ranks compare."""
    return verdict == PASS and not rec.measurement.forward_only


def entries(records: list[PointRecord]) -> list[tuple[str, list[Entry]]]:
    """(group label, its entries in leaderboard order) per point, in the order the points first appear."""
    groups: dict[str, list[PointRecord]] = {}
    for rec in records:
        groups.setdefault(group_label(rec.point), []).append(rec)
    out = []
    for label, recs in groups.items():
        judged = [(rec, *_judge(rec)) for rec in recs]
        judged.sort(key=lambda j: (_ORDER[j[1]] + 0.5 * (j[1] == PASS and not _ranked(j[0], j[1])),
                                   j[0].measurement.forward_backward_median_s if j[1] in (PASS, UNJUDGED) else 0.0,
                                   j[0].point.impl))
        fastest = next((rec.measurement.forward_backward_median_s for rec, v, _ in judged if _ranked(rec, v)), None)
        rows, rank = [], 0
        for rec, verdict, detail in judged:
            ranked = _ranked(rec, verdict)
            rank += ranked
            comparable = ranked or (verdict == UNJUDGED and not rec.measurement.forward_only)
            ratio = rec.measurement.forward_backward_median_s / fastest if fastest and comparable else None
            if verdict == PASS and not ranked:
                detail += f"; {FORWARD_ONLY}"
            rows.append(Entry(rec, verdict, detail, rank if ranked else None, ratio))
        out.append((label, rows))
    return out


def _pct_of_peak(rec: PointRecord, peaks: dict) -> str:
    m = rec.measurement
    peak = (m.peak_gflops if m is not None else None) or peaks.get(header_key(rec.point.device, rec.point.dtype))
    gflops = rec.gflops
    return f"{100 * gflops / peak:.0f}%" if peak and gflops is not None and math.isfinite(gflops) else "-"


def _spread(m: Measurement) -> str:
    """±IQR/2 of the median, as the sweep's table, marked NOISY (IQR/median above `NOISY_SPREAD`) and
    OVERSUBSCRIBED (`Measurement.oversubscribed`): a rank between such times may not hold on a rerun."""
    return (plus_minus(m.forward_backward_s) + (" NOISY" if is_noisy(m.forward_backward_s) else "")
            + (" OVERSUBSCRIBED" if m.oversubscribed else ""))


LEADERBOARD_HEADERS = ["point", "rank", "impl", "fwd+bwd (median)", "spread (±IQR/2)", "x fastest", "% peak",
                       "verdict"]
SUMMARY_HEADERS = ["impl", "fastest at", "passed", "failed", "skipped", "not judged", "x fastest (geo-mean, passed)"]


def leaderboard_rows(results: ResultsFile) -> tuple[list[list[Any]], list[list[Any]], list[str]]:
    """(summary rows, leaderboard rows, notes) of one results file; headers: `SUMMARY_HEADERS`,
    `LEADERBOARD_HEADERS`. The point's label is on the first row of its group only."""
    peaks = results.env.get("matmul_peak_gflops") or {}
    groups = entries(list(results.by_key().values()))
    rows: list[list[Any]] = []
    tally: dict[str, dict[str, Any]] = {}
    for label, group in groups:
        for e in group:
            t = tally.setdefault(e.record.point.impl, {"wins": 0, PASS: 0, FAIL: 0, SKIPPED: 0, UNJUDGED: 0,
                                                       "logs": []})
            t[e.verdict] += 1
            t["wins"] += e.rank == 1
            if e.verdict == PASS and e.ratio is not None:  # a forward-only kernel has no ratio
                t["logs"].append(math.log(e.ratio))
        if len(group) > 1 and all(e.verdict == SKIPPED and e.detail == group[0].detail for e in group):
            # the point is out of this machine's reach for everyone (a GPU-sized shape): one row, not one per impl
            rows.append([label, "-", f"all {len(group)}", "-", "-", "-", "-", f"{SKIPPED} ({group[0].detail})"])
            continue
        for i, e in enumerate(group):
            rows.append([label if i == 0 else "", e.rank or "-", e.record.point.impl, seconds_text(e.seconds),
                         _spread(e.record.measurement) if e.seconds is not None else "-",
                         f"{e.ratio:.2f}x" if e.ratio is not None else "-",
                         _pct_of_peak(e.record, peaks) if e.verdict in (PASS, UNJUDGED) else "-",
                         f"{e.verdict} ({e.detail})" if e.detail else e.verdict])
    summary = [[impl, t["wins"], t[PASS], t[FAIL], t[SKIPPED], t[UNJUDGED],
                f"{math.exp(sum(t['logs']) / len(t['logs'])):.2f}x" if t["logs"] else "-"]
               for impl, t in sorted(tally.items(), key=lambda kv: (-kv[1]["wins"], -kv[1][PASS], kv[0]))]
    notes = ["rank: among the implementations whose result passed the tolerance policy (err/bound <= 1), by "
             "median forward+backward time; x fastest: time over the fastest passing implementation's at that "
             "point. A failed, unjudged or skipped implementation is never ranked, nor a forward-only one (its "
             "time is a forward alone)."]
    marks = [e.record.measurement for _, g in groups for e in g if e.seconds is not None]
    if any(is_noisy(m.forward_backward_s) for m in marks):
        notes.append(f"NOISY: repeats spread by more than {100 * NOISY_SPREAD:.0f}% of their median (IQR/median)")
    over = next((m.oversubscribed for m in marks if m.oversubscribed), None)
    if over:
        notes.append(f"OVERSUBSCRIBED: measured while the machine was oversubscribed (e.g. {over}): the times read "
                     f"high and the ranks between them may not hold; rerun on a quieter machine")
    if not peaks and not any(e.record.measurement is not None and e.record.measurement.peak_gflops
                             for _, g in groups for e in g):
        notes.append("% peak: the matmul peak was not measured (--no-peak)")
    return summary, rows, notes


def render_leaderboard_markdown(results: list[ResultsFile]) -> str:
    """Markdown leaderboards of results files: one section per machine, one per file under it."""
    groups = by_machine(results)
    lines = [f"**lstm-bench leaderboard: {len(results)} file(s) from {len(groups)} machine(s)** "
             f"(forward+backward; machines reported apart, never pooled)"]
    for files in groups.values():
        lines += ["", f"### {describe(files[0].fingerprint)}"]
        for res in files:
            summary, rows, notes = leaderboard_rows(res)
            lines += ["", f"`{res.path.name}` ({res.header.get('created', '')}; torch {res.env.get('torch')}, "
                          f"{res.env.get('threads')} thread(s))", ""]
            lines += markdown_table(SUMMARY_HEADERS, summary) + [""] + markdown_table(LEADERBOARD_HEADERS, rows) + [""]
            lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
