"""Timing comparison of two sets of sweeps (`lstm-bench compare BASE NEW`), as a typed result.

`compare_runs(base, new)` takes each side's runs (results files of the same sweep,
typically recorded alternately: base, new, base, new, ...) and judges every point
measured on both sides with `lstm_bench.comparison.stats.compare_run_samples`. The unit of the
test is the run, since a run's repeats share its stretch of load: with two or more
runs a side, Welch's t on the logs of the run medians; with one run on a side only its
repeats are left, a test whose p-values are too small on a noisy machine (said in
`notes`). It returns the one verdict type of a speed comparison (`verdict.SpeedVerdict`),
a row per point: the test's outcome (regression, slower, faster, no change, or
inconclusive when the noise hid a slowdown of the threshold's size), a point that broke
in NEW or that BASE measured and NEW lacks (failed, unless allowed), and points measured
under load on either side made inconclusive (separate runs do not share their load);
points whose backend (`Result.backend`, recorded per point) changed between the sides are
noted. The command only prints it. For a verdict that stays calibrated under load, time both
sides interleaved in one job: `lstm-bench ab` (`lstm_bench.comparison.ab`).
"""
from __future__ import annotations

from ..bench.grid import Point
from ..bench.records import PointRecord
from ..bench.results import ResultsError, ResultsFile, load_many, same_json
from ..machine.load import Load, summarise
from .stats import compare_run_samples, min_p
from .verdict import PointVerdict, SpeedVerdict, row_from_stats

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


def _latest(runs: list[ResultsFile]) -> dict[str, PointRecord]:
    """Point key -> its most telling record over the runs (ok wins over failed over skipped)."""
    rank = {"ok": 2, "failed": 1, "skipped": 0}
    out: dict[str, PointRecord] = {}
    for run in runs:
        for key, rec in run.by_key().items():
            if key not in out or rank[rec.status] > rank[out[key].status]:
                out[key] = rec
    return out


def _per_point(runs: list[ResultsFile]) -> tuple[dict[str, list[Load]], dict[str, set[str]]]:
    """Per point key, the loads and the backends of its ok records over the runs."""
    loads: dict[str, list[Load]] = {}
    backends: dict[str, set[str]] = {}
    for run in runs:
        for rec in run.ok():
            if rec.measurement.load is not None:
                loads.setdefault(rec.key, []).append(rec.measurement.load)
            if rec.measurement.backend:
                backends.setdefault(rec.key, set()).add(rec.measurement.backend)
    return loads, backends


def compare_runs(base: list[ResultsFile], new: list[ResultsFile], *, metric: str = "forward_backward",
                 threshold: float = 0.05, alpha: float = 0.05, correction: str = "holm",
                 force: bool = False, allow_missing: bool = False) -> SpeedVerdict:
    """Judge NEW against BASE at every point measured in both (module docstring).

    A point recorded in BASE (ok or failed) that NEW has no result for fails ("measured in BASE,
    missing in NEW") unless `allow_missing` (then "not compared"); a point NEW failed at fails.
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
    b_rec, n_rec = _latest(base), _latest(new)
    points.update({k: r.point for k, r in {**n_rec, **b_rec}.items() if k not in points})
    if not pairs and not any(r.status == "failed" for r in n_rec.values()) \
            and not any(r.status != "skipped" and k not in n_rec for k, r in b_rec.items()):
        raise ResultsError(f"no point has {metric} times on both sides")
    verdicts = compare_run_samples(pairs, threshold=threshold, alpha=alpha, correction=correction) if pairs else []
    b_loads, b_backends = _per_point(base)
    n_loads, n_backends = _per_point(new)
    rows: list[PointVerdict] = []
    for v in verdicts:
        row = row_from_stats(points[v.key], v, load=summarise(b_loads.get(v.key, []) + n_loads.get(v.key, [])),
                             paired=False)
        row.backend_base = ", ".join(sorted(b_backends.get(v.key, ())))
        row.backend_new = ", ".join(sorted(n_backends.get(v.key, ())))
        if row.backend_base and row.backend_new and row.backend_base != row.backend_new:
            row.notes.append(f"backend changed: {row.backend_base} in BASE, {row.backend_new} in NEW "
                             f"(another route or library ran: the ratio compares them)")
        rows.append(row)
    for key in sorted(set(b_rec) | set(n_rec)):
        if key in pairs:
            continue
        b, n = b_rec.get(key), n_rec.get(key)
        b_status, n_status = (b.status if b else "absent"), (n.status if n else "absent")
        if b_status in ("skipped", "absent") and n_status in ("skipped", "absent"):
            continue  # skipped on both sides: nothing to compare, nothing missing
        if n_status == "failed":
            was = "BASE measured it" if b_status == "ok" else "not measured in BASE either"
            rows.append(PointVerdict(points[key], "failed", reason=f"{n.error} ({was})"))
        elif b_status != "skipped" and b_status != "absent" and n_status in ("skipped", "absent"):
            was = "BASE measured it" if b_status == "ok" else "BASE recorded it"
            rows.append(PointVerdict(points[key], "not compared", reason=f"missing in NEW ({was}; allowed)")
                        if allow_missing else PointVerdict(points[key], "failed", reason=f"missing ({was})"))
        else:
            why = "failed in BASE" if b_status == "failed" else "not in BASE"
            rows.append(PointVerdict(points[key], "not compared", reason=why))

    warnings = [problem + " (compared anyway: --force)" for problem in problems]
    repeats = [v for v in verdicts if v.method == "repeats"]
    if repeats:
        notes.append(f"{len(repeats)} point(s) have one run on a side: judged on the repeats of single runs, whose "
                     f"p-values are too small on a noisy machine (they share one stretch of load); record 3 or "
                     f"more runs a side alternately, or use `lstm-bench ab`")
        n = min(len(pairs[v.key][0][0]) for v in repeats)
        m = min(len(pairs[v.key][1][0]) for v in repeats)
        k = len(pairs) if correction == "holm" else 1
        if min_p(n, m) * k >= alpha:
            warnings.append(f"with {n} vs {m} repeats and {len(pairs)} points, no point can be judged significant "
                            f"at alpha={alpha} ({correction} correction); record more --repeats or more runs")
    pooled = f" ({len(base)} vs {len(new)} runs)" if len(base) + len(new) > 2 else ""
    sides = [f"{metric.replace('_', '+')} time, NEW {_paths(new)} / BASE {_paths(base)}{pooled}"]
    return SpeedVerdict("compare", metric, threshold, alpha, correction, "runs a side", rows, sides, notes, warnings,
                        details={"base_runs": [str(r.path) for r in base], "new_runs": [str(r.path) for r in new]})


def _paths(runs: list[ResultsFile]) -> str:
    return str(runs[0].path) if len(runs) == 1 else f"{runs[0].path} and {len(runs) - 1} more"
