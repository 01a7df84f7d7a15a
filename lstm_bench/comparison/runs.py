"""Timing comparison of two sets of sweeps (`lstm-bench compare BASE NEW`), as a typed result.

`compare_runs(base, new)` takes each side's runs (results files of the same sweep,
typically recorded alternately: base, new, base, new, ...) and judges every point
measured on both sides with `lstm_bench.comparison.stats.compare_run_samples`. The unit of the
test is the run, since a run's repeats share its stretch of load: with two or more
runs a side, Welch's t on the logs of the run medians; with one run on a side only its
repeats are left, a test whose p-values are too small on a noisy machine (said in
`notes`). It returns a `Comparison`: the verdicts, the points measured in BASE but
missing from NEW (a failure unless allowed), the points that broke in NEW, whether the
runs were taken under load, and what about the two environments is worth saying. The
command only prints it. For a verdict that stays calibrated under load, time both
sides interleaved in one job: `lstm-bench ab` (`lstm_bench.comparison.ab`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..bench.grid import Point
from ..bench.results import ResultsError, ResultsFile, load_many, same_json
from ..machine.load import Load, summarise
from .stats import PointComparison, compare_run_samples, min_p

METRICS = ("forward_backward", "forward")


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
    if not same_json(base.grid, new.grid):
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


def run_samples(runs: list[ResultsFile], metric: str) -> tuple[dict[str, list[list[float]]], dict[str, Point]]:
    """Per point key, the `metric` repeats of each run's ok record (one list per run); and the points."""
    samples: dict[str, list[list[float]]] = {}
    points: dict[str, Point] = {}
    for run in runs:
        for rec in run.ok():
            values = rec.measurement.samples(metric)
            if values:
                samples.setdefault(rec.key, []).append(list(values))
                points[rec.key] = rec.point
    return samples, points


def _statuses(runs: list[ResultsFile]) -> dict[str, str]:
    """Point key -> status of its latest record over the runs (ok wins over failed over skipped)."""
    rank = {"ok": 2, "failed": 1, "skipped": 0}
    out: dict[str, str] = {}
    for run in runs:
        for key, rec in run.by_key().items():
            if key not in out or rank[rec.status] > rank[out[key]]:
                out[key] = rec.status
    return out


def _loads(runs: list[ResultsFile]) -> list[Load]:
    return [r.measurement.load for run in runs for r in run.ok() if r.measurement.load is not None]


@dataclass
class Comparison:
    """What `compare_runs` found. A comparison fails (`failed`) on a regression, a point broken in NEW,
    or a point measured in BASE that NEW lacks (unless `allow_missing`)."""

    metric: str
    threshold: float
    alpha: float
    correction: str
    base_runs: int
    new_runs: int
    verdicts: list[PointComparison]
    points: dict[str, Point]
    missing: list[str] = field(default_factory=list)  # measured on one side only (not skipped on both)
    broken: list[str] = field(default_factory=list)  # ok in BASE, failed in NEW (or failed in every NEW run)
    missing_in_new: list[str] = field(default_factory=list)  # recorded in BASE (ok or failed), no result in NEW
    allow_missing: bool = False
    problems: list[str] = field(default_factory=list)  # environment differences, compared anyway (forced)
    notes: list[str] = field(default_factory=list)
    underpowered: str = ""  # why no point can reach significance, if so
    load: Load | None = None  # over both sides' points; None for files without load records
    new_failed: list[str] = field(default_factory=list)  # every point NEW failed (whatever BASE did)
    base_ok: list[str] = field(default_factory=list)  # every point BASE measured

    @property
    def regressions(self) -> list[PointComparison]:
        return [v for v in self.verdicts if v.regression]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.broken or (self.missing_in_new and not self.allow_missing))

    @property
    def under_load(self) -> bool:
        return self.load is not None and self.load.under_load

    def counts(self) -> dict[str, int]:
        return {s: sum(v.verdict == s for v in self.verdicts) for s in ("faster", "slower", "no change")}


def compare_runs(base: list[ResultsFile], new: list[ResultsFile], *, metric: str = "forward_backward",
                 threshold: float = 0.05, alpha: float = 0.05, correction: str = "holm",
                 force: bool = False, allow_missing: bool = False) -> Comparison:
    """Judge NEW against BASE at every point measured in both (module docstring).

    A point recorded in BASE (ok or failed) that NEW has no result for is `missing_in_new`,
    a failure unless `allow_missing`; a point ok in BASE that failed in NEW is `broken`.
    ResultsError when the two sides were recorded in incomparable environments (unless
    `force`), or when the files share no point at all.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    problems, notes = comparability(base[0], new[0])
    if problems and not force:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"cannot compare {base[0].path} with {new[0].path}: {problems[0]}{more}; "
                           f"timings would not be comparable (pass --force to compare anyway)")
    b_samples, points = run_samples(base, metric)
    n_samples, n_points = run_samples(new, metric)
    pairs = {k: (b_samples[k], n_samples[k]) for k in b_samples if k in n_samples}
    base_status, new_status = _statuses(base), _statuses(new)
    broken = sorted(k for k, st in base_status.items() if st == "ok" and new_status.get(k) == "failed")
    missing_in_new = sorted(k for k, st in base_status.items() if st != "skipped"
                            and new_status.get(k, "skipped") == "skipped")
    new_failed = sorted(k for k, st in new_status.items() if st == "failed")
    if not pairs and not broken and not missing_in_new and not new_failed:
        raise ResultsError(f"no point has {metric} times on both sides")
    seen: dict[str, set[str]] = {}
    for statuses in (base_status, new_status):
        for key, status in statuses.items():
            seen.setdefault(key, set()).add(status)
    missing = sorted(k for k, st in seen.items() if k not in pairs and st != {"skipped"})
    for k in new_failed:  # NEW failed everywhere it ran: broken, even where BASE failed too
        if k not in broken and k not in pairs:
            broken.append(k)
    broken.sort()
    verdicts = compare_run_samples(pairs, threshold=threshold, alpha=alpha, correction=correction) if pairs else []
    points.update({k: v for k, v in n_points.items() if k not in points})

    underpowered = ""
    repeats = [v for v in verdicts if v.method == "repeats"]
    if repeats:
        notes.append(f"{len(repeats)} point(s) have one run on a side: judged on the repeats of single runs, whose "
                     f"p-values are too small on a noisy machine (they share one stretch of load); record 3 or "
                     f"more runs a side alternately, or use `lstm-bench ab`")
        n = min(len(pairs[v.key][0][0]) for v in repeats)
        m = min(len(pairs[v.key][1][0]) for v in repeats)
        k = len(pairs) if correction == "holm" else 1
        if min_p(n, m) * k >= alpha:
            underpowered = (f"with {n} vs {m} repeats and {len(pairs)} points, no point can be judged significant "
                            f"at alpha={alpha} ({correction} correction); record more --repeats or more runs")
    return Comparison(metric, threshold, alpha, correction, len(base), len(new), verdicts, points,
                      missing, broken, missing_in_new, allow_missing, problems, notes, underpowered,
                      summarise(_loads(base) + _loads(new)), new_failed,
                      sorted(k for k, st in base_status.items() if st == "ok"))
