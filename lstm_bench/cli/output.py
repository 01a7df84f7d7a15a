"""Terminal formatting for every command: tables, units, durations, and the sweep's progress display.

Tables and the progress bar are rich's (https://github.com/Textualize/rich): tables are
rendered to plain text (no colour, no wrapping, as wide as their content), so that they
read the same in a terminal, a CI log or a pipe; the progress bar is drawn in place on a
terminal, and becomes one line per point elsewhere.
"""
from __future__ import annotations

import io
import math
import os
import sys
import time
from typing import Any, Collection, Sequence, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..bench.grid import PLAIN, Point
from ..bench.records import PointRecord
from ..bench.spread import NOISY_SPREAD
from ..bench.sweep import SweepObserver, SweepPlan
from ..comparison.stats import POWER
from ..comparison.verdict import PointVerdict, SpeedVerdict
from .args import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_OK, worst


def emit(text: str, out: str | None) -> None:
    """`text` into the new file `out` (never over an existing one: O_EXCL; `out` was checked before
    the work with `args.check_new_file`), then its name; or `text` on stdout."""
    if out:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        print(out)
    else:
        print(text, end="")


def table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, left: int | Collection[int] = 1) -> str:
    """A plain-text table. Left-aligned: the first `left` columns, or the columns whose indices `left`
    holds (negative ones count from the end); every other column is right-aligned (numbers)."""
    n = len(headers)
    lefts = set(range(left)) if isinstance(left, int) else {i % n for i in left}
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="", collapse_padding=True)
    for i, h in enumerate(headers):
        t.add_column(Text(str(h)), justify="left" if i in lefts else "right", no_wrap=True)
    for row in rows:
        t.add_row(*(Text(str(c)) for c in row))  # Text: cells are never read as rich markup
    buf = io.StringIO()
    Console(file=buf, width=100_000, color_system=None, highlight=False).print(t)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines() if line.strip())


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable: GiB always returns")


def human_duration(s: float | None) -> str:
    """Seconds as "850 us", "12.34 ms", "1.23 s", "4m05s" or "2h03m"; "-" for None or a non-finite value."""
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    if s < 60:
        return f"{s:.2f} s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def point_columns(points: Collection[Point]):
    """(headers, cells, left) for the columns that name a point in a table of `points`, the same in
    every table: impl T B I H device dtype, then config when some point is not the plain LSTM.
    cells(point) gives a row's; `left` holds the indices of the left-aligned (text) columns."""
    has_configs = any(p.variant != PLAIN for p in points)
    headers = ["impl", "T", "B", "I", "H", "device", "dtype"] + (["config"] if has_configs else [])

    def cells(p: Point) -> list:
        return [p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype] + ([p.variant.label] if has_configs else [])
    return headers, cells, (0, 5, 6) + ((7,) if has_configs else ())


def point_label(point: Point) -> str:
    return (f"{point.impl} T={point.T} B={point.B} I={point.I} H={point.H} {point.device} {point.dtype}"
            + ("" if point.variant == PLAIN else f" {point.variant.label}"))


class ProgressBar(SweepObserver):
    """The sweep's progress on `stream` (stderr): the point being measured, elapsed time, time left."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.progress: Progress | None = None
        self.count = 0

    def started(self, plan: SweepPlan) -> None:
        self.total, self.t0 = len(plan.todo), time.perf_counter()
        print(f"Sweep of {len(plan.points)} points ({plan.runnable} runnable here, "
              f"{len(plan.points) - len(plan.todo)} already in {plan.out}); {plan.settings.repeats} repeats, "
              f"{plan.threads} thread{'s' if plan.threads != 1 else ''}. Results: {plan.out}", file=self.stream)
        if self.enabled and self.tty:
            self.progress = Progress(BarColumn(bar_width=20), MofNCompleteColumn(), TextColumn("{task.description}"),
                                     TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                                     console=Console(file=self.stream), transient=False)
            self.task = self.progress.add_task("", total=self.total, left="")
            self.progress.start()

    def measuring(self, index: int, point: Point, seconds_left: float | None) -> None:
        left = f"~{human_duration(seconds_left)} left" if seconds_left is not None else ""
        if self.progress is not None:
            self.progress.update(self.task, description=f"measuring {point_label(point)}", left=left)
        elif self.enabled:
            elapsed = human_duration(time.perf_counter() - self.t0)
            print(f"[{self.count}/{self.total}] measuring {point_label(point)}  elapsed {elapsed}"
                  + (f", {left}" if left else ""), file=self.stream, flush=True)

    def measured(self, index: int, record: PointRecord, seconds_left: float | None) -> None:
        self.count += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)

    def finished(self, interrupted: bool) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.enabled:
            print(f"{'interrupted' if interrupted else 'sweep done'}: {self.count}/{self.total} points in "
                  f"{human_duration(time.perf_counter() - self.t0)}", file=self.stream)


def percent(fraction: float | None, digits: int = 1) -> str:
    """0.0523 -> "5.2%"; "-" for None or NaN; "inf" reads as "no power"."""
    if fraction is None or math.isnan(fraction):
        return "-"
    if math.isinf(fraction):
        return "none"
    return f"{100 * fraction:.{digits}f}%"


def spread_text(spread_base: float, spread_new: float) -> str:
    """The larger IQR/median of the two sides, marked NOISY above 10 % (`spread.NOISY_SPREAD`)."""
    worst = max(spread_base, spread_new)
    if math.isnan(worst):
        return "-"
    return f"{100 * worst:.0f}%" + (" NOISY" if worst > NOISY_SPREAD else "")


# --- speed verdicts (`compare`, `ab`): one renderer --------------------------------------------------------------

TESTS = {"batches": "Student's t on the per-generation medians of ln(new/base)",
         "pairs": "Wilcoxon signed-rank on ln(new/base)", "runs": "Welch's t on log run medians",
         "repeats": "Mann-Whitney U on repeats"}


def outcome_text(row: PointVerdict) -> str:
    """The outcome cell: "regression", "INCONCLUSIVE", ..., with "(measured under load)" when it was."""
    text = {"regression": "REGRESSION", "inconclusive": "INCONCLUSIVE", "failed": "FAILED"}.get(row.outcome,
                                                                                                 row.outcome)
    return text + (" (measured under load)" if row.under_load else "")


def verdict_rows(verdict: SpeedVerdict) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the per-point table of the compared points.

    "base median" and "new median" are the medians of each side's seconds per call; "new/base"
    is the test's own estimate (ab: exp of the mean per-generation median of ln(new/base);
    compare: of the run medians), which differs from the ratio of the two medians when the
    load moved between pairs: it is the figure the verdict rests on."""
    compared = [r for r in verdict.rows if r.stats is not None]
    has_configs = any(r.point.variant != PLAIN for r in compared)
    methods = {r.stats.method for r in compared}
    headers = ["impl", "T", "B", "I", "H", "device", "dtype"] + (["config"] if has_configs else []) + [
               "base median", "new median", "new/base (test)", "95% CI", "p (Holm)", "detectable", "spread"] + (
               ["test"] if len(methods) > 1 else []) + ["outcome"]
    rows = []
    for r in compared:
        p, v = r.point, r.stats
        rows.append([p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype] + ([p.variant.label] if has_configs else []) + [
                    human_duration(v.base_median), human_duration(v.new_median), f"{v.ratio:.3f}",
                    f"[{v.ci_low:.3f}, {v.ci_high:.3f}]", f"{v.p_adjusted:.2g}", percent(v.detectable),
                    spread_text(v.spread_base, v.spread_new)] + ([v.method] if len(methods) > 1 else [])
                    + [outcome_text(r)])
    return headers, rows


def sensitivity_line(verdict: SpeedVerdict) -> str:
    """The weakest point's detectable slowdown, and how many more pairs / runs would bring every point to
    the threshold."""
    known = [v for v in verdict.verdicts if not math.isnan(v.detectable)]
    if not known:
        return ""
    worst = max(known, key=lambda v: v.detectable)
    more = max(v.more_for_target for v in known)
    target = known[0].target
    line = (f"sensitivity: the smallest slowdown detectable ({100 * POWER:.0f}% power, at the noise measured) is "
            f"{percent(min(v.detectable for v in known))} at the best point, {percent(worst.detectable)} at the "
            f"worst ({worst.key})")
    if more:
        line += f"; about {_more(verdict, more)} would bring every point to {percent(target, 0)}"
    else:
        line += f"; every point can see {percent(target, 0)}"
    return line


def _more(verdict: SpeedVerdict, n: int) -> str:
    text = f"{n} more {verdict.unit}"
    if verdict.per_batch:
        text += f" ({math.ceil(n / verdict.per_batch)} more worker generations of {verdict.per_batch:g} pairs)"
    return text


def verdict_report(verdict: SpeedVerdict) -> str:
    """What `compare` and `ab` print: the sides, the notes, the load, the table, the points not compared or
    failed, the notes per point, the sensitivity, and a summary with the outcome of the whole."""
    lines = list(verdict.sides) + [f"  {note}" for note in verdict.notes]
    load = verdict.load
    if load is not None:
        lines.append(("TAKEN UNDER LOAD: " if load.under_load else "load: ") + load.describe()
                     + (("" if not load.under_load else
                         " (ab: both sides of every pair shared it; the detectable column says what it cost)"
                         if verdict.command == "ab" else
                         " (separate runs do not share it: such points are inconclusive; alternate runs, or use "
                         "`lstm-bench ab`)")))
    headers, rows = verdict_rows(verdict)
    if rows:
        config = 7 if "config" in headers else None
        lines.append(table(headers, rows, left=(0, 5, 6, -1) + ((config,) if config else ())
                           + ((-2,) if "test" in headers else ())))
    for r in verdict.rows:
        if r.outcome == "failed":
            lines.append(f"FAILED in NEW: {point_label(r.point)}: {r.reason}")
    skipped: dict[str, int] = {}
    for r in verdict.with_outcome("not compared"):
        if r.reason.startswith("skipped: "):
            skipped[r.reason] = skipped.get(r.reason, 0) + 1
        else:
            lines.append(f"not compared: {point_label(r.point)}: {r.reason}")
    lines += [f"{reason.replace('skipped: ', f'skipped {n} point(s): ', 1)}" for reason, n in skipped.items()]
    for r in verdict.rows:
        if r.outcome == "inconclusive" and r.reason:
            lines.append(f"INCONCLUSIVE: {point_label(r.point)}: {r.reason}")
        lines += [f"note: {point_label(r.point)}: {note}" for note in r.notes]
    noisy = sum(v.noisy for v in verdict.verdicts)
    if noisy:
        lines.append(f"{noisy} point(s) NOISY: a side's repeats spread by more than {100 * NOISY_SPREAD:.0f}% "
                     f"(IQR/median)" + ("; the pairing absorbs shared load, the detectable column what is left"
                                        if verdict.command == "ab" else ""))
    line = sensitivity_line(verdict)
    if line:
        lines.append(line)
    if verdict.command == "ab" and any(r.stats for r in verdict.rows):
        lines.append("new/base (test) is the paired estimate the verdict rests on; the medians are each side's "
                     "own, which the load can move apart")
    lines.append(summary_line(verdict))
    return "\n".join(lines)


def summary_line(verdict: SpeedVerdict) -> str:
    c = verdict.counts()
    methods = sorted({v.method for v in verdict.verdicts})
    test = " / ".join(TESTS[m] for m in methods) or "no test"
    parts = [f"{c[o]} {o}" for o in ("regression", "failed", "inconclusive", "slower", "faster", "no change",
                                     "not compared") if c[o]]
    line = (f"{len(verdict.rows)} points: {', '.join(parts) or 'none'} ({test}, {verdict.correction}, "
            f"alpha={verdict.alpha}, threshold {percent(verdict.threshold, 0)})")
    loaded = sum(r.under_load for r in verdict.rows if r.stats)
    if loaded:
        line += f"; {loaded} measured under load"
    status = verdict.status
    if verdict.interrupted:
        line += "; INTERRUPTED: the verdict covers the pairs that finished"
    if status == "failed":
        line += "; FAILED"
    elif status == "inconclusive":
        more = verdict.more_to_decide()
        line += (f"; INCONCLUSIVE: at {len(verdict.with_outcome('inconclusive'))} point(s) the noise measured "
                 f"(or the load) could hide a slowdown of the threshold's size"
                 + (f"; about {_more(verdict, more)} would decide it" if more else ""))
    elif status == "nothing":
        line += "; nothing was compared"
    else:
        line += "; passed"
    return line


def verdict_exit_code(verdict: SpeedVerdict) -> int:
    """The exit-code contract (`args`): 130 interrupted; else the most severe of its points' (`args.worst`):
    1 a regression or a failed point, 3 an inconclusive one, 5 none compared, 0 passed."""
    if verdict.interrupted:
        return EXIT_INTERRUPTED
    return worst(EXIT_FAIL if verdict.failed else EXIT_OK,
                 EXIT_INCONCLUSIVE if verdict.with_outcome("inconclusive") else EXIT_OK,
                 EXIT_NOTHING if not verdict.verdicts else EXIT_OK)


class ABProgress:
    """`lstm-bench ab`'s progress on stderr: one line per few rounds with the time left."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.last = 0.0

    def started(self, base: dict, new: dict, points: int, runnable: int) -> None:
        if self.enabled:
            print(f"A/B of {runnable} points ({points - runnable} skipped)", file=self.stream, flush=True)

    def setting_up(self, index: int, point: Point) -> None:
        if self.enabled:
            print(f"  setting up {point_label(point)}", file=self.stream, flush=True)

    def round_done(self, done: int, total: int, seconds_left: float | None) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 10 and done < total):
            return
        self.last = now
        left = f", ~{human_duration(seconds_left)} left" if seconds_left is not None else ""
        print(f"[{done}/{total} pairs] elapsed {human_duration(now - self.t0)}{left}", file=self.stream, flush=True)

    def finished(self, interrupted: bool) -> None:
        if self.enabled:
            print(f"{'interrupted' if interrupted else 'A/B done'} after {human_duration(time.perf_counter() - self.t0)}",
                  file=self.stream, flush=True)
