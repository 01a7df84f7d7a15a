"""Terminal formatting for every command: tables, units, durations, and the sweep's progress display.

Tables and the progress bar are rich's (https://github.com/Textualize/rich): tables are
rendered to plain text (no colour, no wrapping, as wide as their content), so that they
read the same in a terminal, a CI log or a pipe; the progress bar is drawn in place on a
terminal, and becomes one line per point elsewhere.
"""
from __future__ import annotations

import io
import math
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
from ..bench.sweep import SweepObserver, SweepPlan


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
    from ..bench.spread import NOISY_SPREAD

    worst = max(spread_base, spread_new)
    if math.isnan(worst):
        return "-"
    return f"{100 * worst:.0f}%" + (" NOISY" if worst > NOISY_SPREAD else "")


def verdict_rows(verdicts, points: dict, *, show_method: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of a per-point verdict table (`compare`, `ab`)."""
    has_configs = any(points[v.key].variant != PLAIN for v in verdicts)
    headers = ["impl", "T", "B", "I", "H", "device", "dtype"] + (["config"] if has_configs else []) + [
               "base", "new", "new/base", "95% CI", "p (Holm)", "detectable", "spread", "verdict"]
    if show_method:
        headers.insert(-1, "test")
    rows = []
    for v in verdicts:
        p = points[v.key]
        row = [p.impl, p.T, p.B, p.I, p.H, p.device, p.dtype] + ([p.variant.label] if has_configs else []) + [
               human_duration(v.base_median),
               human_duration(v.new_median), f"{v.ratio:.3f}", f"[{v.ci_low:.3f}, {v.ci_high:.3f}]",
               f"{v.p_adjusted:.2g}", percent(v.detectable), spread_text(v.spread_base, v.spread_new),
               v.verdict + ("  REGRESSION" if v.regression else "")]
        if show_method:
            row.insert(-1, v.method)
        rows.append(row)
    return headers, rows


def sensitivity_line(verdicts, unit: str) -> str:
    """The weakest point's detectable slowdown, and how many more `unit` would bring it to 5 %."""
    from ..comparison.stats import POWER, TARGET

    known = [v for v in verdicts if not math.isnan(v.detectable)]
    if not known:
        return ""
    worst = max(known, key=lambda v: v.detectable)
    more = max(v.more_for_target for v in known)
    line = (f"sensitivity: the smallest slowdown detectable ({100 * POWER:.0f}% power, at the noise measured) is "
            f"{percent(min(v.detectable for v in known))} at the best point, {percent(worst.detectable)} at the "
            f"worst ({worst.key})")
    if more:
        line += f"; about {more} more {unit} would bring every point to {100 * TARGET:.0f}%"
    else:
        line += f"; every point can see {100 * TARGET:.0f}%"
    return line


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
