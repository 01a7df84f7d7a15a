"""The one verdict of a speed comparison (`lstm-bench compare` and `lstm-bench ab`): a row per point.

Each row has one outcome:

    regression    significantly slower, estimated above 1 + threshold       (fails)
    failed        NEW broke at the point: an error, NaN/Inf or a wrong      (fails)
                  result, or a point BASE measured that NEW lacks
    inconclusive  not significant, but the noise measured hid a slowdown of
                  the threshold's size (`stats.outcome`); or, in `compare`, a
                  point measured under load (below)
    slower        significantly slower, within the threshold                (passes)
    faster        significantly faster                                       (passes)
    no change     not significant, and a slowdown of the threshold's size
                  would have been seen                                       (passes)
    not compared  skipped, wrong or failed in BASE, or allowed to be missing

and the comparison as a whole is "failed" (any regression or failed row), else
"inconclusive" (any inconclusive row), else "nothing" (no row compared, nothing failed),
else "passed" (`SpeedVerdict.status`); the command maps these to its exit code.

Load (a row's `load`, `machine.load.Load.under_load`). `ab` times BASE and NEW
interleaved, pair by pair: a burst of load falls on both halves of a pair and cancels in
its ratio, and the test's unit (a worker generation) carries whatever is left into the
interval; so an `ab` row measured under load keeps its outcome and says so ("regression
(measured under load: ...)"). `compare` judges separately recorded runs, which do not
share their load: a loaded NEW reads slower (a false regression: two identical sweeps,
one beside a busy neighbour, read 3.36x), a loaded BASE hides a regression. So a
`compare` row measured under load on either side is never "regression" nor "no change":
it becomes "inconclusive", with the reason (docs/verdicts.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..bench.grid import Point
from ..machine.load import Load, summarise
from .stats import PointComparison

FAILING = ("regression", "failed")
OUTCOMES = ("regression", "failed", "inconclusive", "slower", "faster", "no change", "not compared")


@dataclass
class PointVerdict:
    """One point of a speed comparison: its outcome, its test (None when not compared), why, and notes."""

    point: Point
    outcome: str
    stats: PointComparison | None = None
    reason: str = ""  # why failed, not compared or inconclusive
    notes: list[str] = field(default_factory=list)  # backend changes, load
    load: Load | None = None
    backend_base: str = ""  # what ran (Result.backend), "a, b" when it varied
    backend_new: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")

    @property
    def key(self) -> str:
        return self.point.key

    @property
    def under_load(self) -> bool:
        return self.load is not None and self.load.under_load

    def to_json(self) -> dict:
        return {"key": self.key, "point": self.point.as_dict(), "outcome": self.outcome, "reason": self.reason,
                "notes": list(self.notes), "under_load": self.under_load,
                "load": self.load.to_json() if self.load else None, "backend_base": self.backend_base,
                "backend_new": self.backend_new, "stats": self.stats.to_dict() if self.stats else None}


def row_from_stats(point: Point, stats: PointComparison, *, load: Load | None, paired: bool) -> PointVerdict:
    """The row of a compared point: the test's outcome, then the load rule (module docstring)."""
    row = PointVerdict(point, stats.outcome, stats, load=load)
    if row.outcome == "inconclusive":
        row.reason = (f"not significant, and a {100 * stats.target:.0f}% slowdown was not detectable at the noise "
                      f"measured (detectable: " + (f"{100 * stats.detectable:.1f}%" if math.isfinite(stats.detectable)
                                                   else "none") + ")")
    if not row.under_load:
        return row
    where = f"measured under load ({load.describe()})"
    if paired:
        row.notes.append(where + ": both sides of every pair shared it")
    elif row.outcome in ("regression", "no change", "slower", "inconclusive"):
        was = row.outcome
        row.outcome = "inconclusive"
        row.reason = (f"{was} by the test (ratio {stats.ratio:.3f}), but {where}: separately recorded runs do not "
                      f"share their load; record again on a quiet machine or use `lstm-bench ab`")
    else:
        row.notes.append(where)
    return row


@dataclass
class SpeedVerdict:
    """What `compare_runs` or `run_ab` found, for the one renderer (`cli.output.verdict_report`) and JSON."""

    command: str  # "compare" | "ab"
    metric: str
    threshold: float
    alpha: float
    correction: str
    unit: str  # what more of would decide an inconclusive point: "pairs" (ab), "runs a side" (compare)
    rows: list[PointVerdict]
    sides: list[str] = field(default_factory=list)  # one line per side: what was compared
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. no point can reach significance; forced
    interrupted: bool = False
    per_batch: float = 0.0  # ab: pairs per worker generation (to say "more generations")
    details: dict = field(default_factory=dict)  # command-specific JSON: ab's sides, settings and pairs

    @property
    def verdicts(self) -> list[PointComparison]:
        return [r.stats for r in self.rows if r.stats is not None]

    @property
    def points(self) -> dict[str, Point]:
        return {r.key: r.point for r in self.rows}

    def with_outcome(self, *outcomes: str) -> list[PointVerdict]:
        return [r for r in self.rows if r.outcome in outcomes]

    @property
    def regressions(self) -> list[PointVerdict]:
        return self.with_outcome("regression")

    @property
    def failed(self) -> bool:
        return bool(self.with_outcome(*FAILING))

    @property
    def load(self) -> Load | None:
        return summarise([r.load for r in self.rows if r.load is not None])

    @property
    def status(self) -> str:
        """"failed" > "inconclusive" > "nothing" (no point compared) > "passed"."""
        if self.failed:
            return "failed"
        if self.with_outcome("inconclusive"):
            return "inconclusive"
        if not self.verdicts:
            return "nothing"
        return "passed"

    def counts(self) -> dict[str, int]:
        return {o: len(self.with_outcome(o)) for o in OUTCOMES}

    def more_to_decide(self) -> int:
        """Further pairs (ab) or runs a side (compare) that would make every inconclusive point's threshold
        detectable (0 when none is inconclusive for its noise, or unknown)."""
        return max((r.stats.more_for_target for r in self.with_outcome("inconclusive") if r.stats), default=0)

    def to_json(self) -> dict:
        """Strict-JSON-ready (non-finite floats already None in the rows' stats)."""
        load = self.load
        return {"kind": f"lstm-bench-{self.command}", "version": 2, "status": self.status,
                "metric": self.metric, "threshold": self.threshold, "alpha": self.alpha,
                "correction": self.correction, "interrupted": self.interrupted, "counts": self.counts(),
                "more_to_decide": {"unit": self.unit, "n": self.more_to_decide()},
                "load": load.to_json() if load else None, "notes": self.notes, "warnings": self.warnings,
                "points": [r.to_json() for r in self.rows], "verdicts": [v.to_dict() for v in self.verdicts],
                **self.details}
