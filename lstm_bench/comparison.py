"""Timing comparison of two sets of sweeps (`lstm-bench compare BASE NEW`), as a typed result.

`compare_runs(base, new)` pools each side's runs (results files of the same sweep,
typically recorded alternately: base, new, base, new, ...), judges every point measured
on both sides with `lstm_bench.stats.compare_samples`, and returns a `Comparison`:
the verdicts, the points measured on one side only, the points that broke in NEW, and
what about the two environments is worth saying. The command only prints it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .grid import Point
from .results import ResultsError, ResultsFile, load_many
from .stats import PointComparison, compare_samples, min_p

METRICS = ("forward_backward", "forward")


def _same(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def comparability(base: ResultsFile, new: ResultsFile) -> tuple[list[str], list[str]]:
    """(problems, notes) for comparing `new` against `base`.

    Problems make timings incomparable: another torch version, thread count, CPU, GPU
    or grid; `compare_runs` refuses them unless forced. Notes are worth saying but
    expected (another commit, other settings).
    """
    problems, notes = [], []
    b, n = base.env, new.env
    for key, label in (("torch", "torch version"), ("threads", "thread count"), ("cpu", "CPU"), ("gpu", "GPU")):
        if b.get(key) != n.get(key):
            problems.append(f"{label} differs: {b.get(key)!r} in {base.path}, {n.get(key)!r} in {new.path}")
    if not _same(base.grid, new.grid):
        diff = sorted(k for k in set(base.grid) | set(new.grid) if base.grid.get(k) != new.grid.get(k))
        problems.append("grids differ in " + ", ".join(f"{k}: {base.grid.get(k)} vs {new.grid.get(k)}" for k in diff))
    if b.get("commit") != n.get("commit"):
        notes.append(f"commits: {b.get('commit')} -> {n.get('commit')}")
    if base.settings != new.settings:
        notes.append(f"settings differ: {base.settings} vs {new.settings}")
    return problems, notes


def load_side(spec: str) -> list[ResultsFile]:
    """The runs of one side: a results file, a directory of them, or a comma-separated list.

    The runs of one side must be comparable with each other (ResultsError otherwise)."""
    runs = load_many(spec)
    for other in runs[1:]:
        problems, _ = comparability(runs[0], other)
        if problems:
            raise ResultsError(f"cannot pool {other.path} with {runs[0].path}: {problems[0]}")
    return runs


def pooled_samples(runs: list[ResultsFile], metric: str) -> tuple[dict[str, list[float]], dict[str, Point]]:
    """Per point key, the `metric` repeats of every run's ok record concatenated; and the points."""
    samples: dict[str, list[float]] = {}
    points: dict[str, Point] = {}
    for run in runs:
        for rec in run.ok():
            values = rec.measurement.samples(metric)
            if values:
                samples.setdefault(rec.key, []).extend(values)
                points[rec.key] = rec.point
    return samples, points


def _statuses(runs: list[ResultsFile]) -> dict[str, str]:
    """Point key -> status of its latest record over the runs."""
    return {key: rec.status for run in runs for key, rec in run.by_key().items()}


@dataclass
class Comparison:
    """What `compare_runs` found. A comparison fails (`failed`) on a regression or a point broken in NEW."""

    metric: str
    threshold: float
    alpha: float
    correction: str
    base_runs: int
    new_runs: int
    verdicts: list[PointComparison]
    points: dict[str, Point]
    missing: list[str] = field(default_factory=list)  # measured on one side only (not skipped on both)
    broken: list[str] = field(default_factory=list)  # ok in BASE, failed in NEW
    problems: list[str] = field(default_factory=list)  # environment differences, compared anyway (forced)
    notes: list[str] = field(default_factory=list)
    underpowered: str = ""  # why no point can reach significance, if so

    @property
    def regressions(self) -> list[PointComparison]:
        return [v for v in self.verdicts if v.regression]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.broken)

    def counts(self) -> dict[str, int]:
        return {s: sum(v.verdict == s for v in self.verdicts) for s in ("faster", "slower", "no change")}


def compare_runs(base: list[ResultsFile], new: list[ResultsFile], *, metric: str = "forward_backward",
                 threshold: float = 0.10, alpha: float = 0.05, correction: str = "holm",
                 force: bool = False) -> Comparison:
    """Judge NEW against BASE at every point measured in both (each side's runs pooled).

    ResultsError when the two sides were recorded in incomparable environments (unless
    `force`) or when no point was measured on both sides.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    problems, notes = comparability(base[0], new[0])
    if problems and not force:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"cannot compare {base[0].path} with {new[0].path}: {problems[0]}{more}; "
                           f"timings would not be comparable (pass --force to compare anyway)")
    b_samples, points = pooled_samples(base, metric)
    n_samples, _ = pooled_samples(new, metric)
    pairs = {k: (b_samples[k], n_samples[k]) for k in b_samples if k in n_samples}
    if not pairs:
        raise ResultsError(f"no point has {metric} times on both sides")
    base_status, new_status = _statuses(base), _statuses(new)
    seen: dict[str, set[str]] = {}
    for statuses in (base_status, new_status):
        for key, status in statuses.items():
            seen.setdefault(key, set()).add(status)
    missing = sorted(k for k, st in seen.items() if k not in pairs and st != {"skipped"})
    broken = sorted(k for k, st in base_status.items() if st == "ok" and new_status.get(k) == "failed")
    verdicts = compare_samples(pairs, threshold=threshold, alpha=alpha, correction=correction)

    n = min(len(a) for a, _ in pairs.values())
    m = min(len(b) for _, b in pairs.values())
    k = len(pairs) if correction == "holm" else 1
    underpowered = ""
    if min_p(n, m) * k >= alpha:
        underpowered = (f"with {n} vs {m} repeats and {len(pairs)} points, no point can be judged significant at "
                        f"alpha={alpha} ({correction} correction); record more --repeats")
    return Comparison(metric, threshold, alpha, correction, len(base), len(new), verdicts, points,
                      missing, broken, problems, notes, underpowered)
