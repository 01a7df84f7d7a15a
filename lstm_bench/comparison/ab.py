"""Interleaved A/B comparison of two Python environments (`lstm-bench ab --base PY --new PY`).

BASE and NEW are Python executables, each with the version of lstm-bench (or the
user's kernel package) to compare installed. `run_ab` keeps one worker process per
side (`lstm_bench/comparison/ab_worker.py`, shipped from this installation and run by each side's
Python) and alternates them repeat by repeat:

    for each generation g = 1..processes:             (fresh worker processes each time)
        start both workers, set every point up in both
        for each round of this generation:            (pairs / processes rounds)
            for each point:                           (round-robin: a point's pairs are
                order = BASE, NEW or NEW, BASE          spread over the whole run)
                time one repeat on each side, in that order (random)

Drift and bursts of load then fall on both halves of a pair alike and cancel in the
pair's log-ratio d = ln(new / base). The pairs of one generation are not independent of
each other (they share two processes, whose memory layout and scheduling persist, and a
stretch of time: their d were serially correlated here, lag-1 autocorrelation up to
+0.45); the generations are. So `stats.compare_pairs` takes each generation's median of
d as one observation and tests them with Student's t (a batch-means test), Holm-adjusted
over points; a regression is a significant slowdown whose estimated ratio is above
1 + threshold. A repeat is `number` calls, chosen per point (the same on both sides) so
that it lasts at least `min_time`.

Before a point is timed, and again after each generation's pairs, both sides' results
are judged under the tolerance policy (`ab_checks`): a wrong, NaN or Inf result, or a
cached one, in NEW fails the point (never timed on as if it were right); in BASE it
makes the point "not compared", said to be BASE's. What each side ran (`Result.backend`,
which for `vectorised` names its route) is recorded per generation; a point where the
two sides ran different backends, or a side ran different ones in different processes,
says so. Ctrl-C keeps what finished: the verdict of the points with pairs so far.

Prior art: asv's `--interleave-rounds` interleaves whole benchmark processes; pyperf
spreads a benchmark over worker processes; Google Benchmark's compare.py runs a U test
on repetitions (and wants >= 9 of them). Here the unit of the test is the generation of
worker processes, and each of its observations is already a paired, load-cancelled ratio.
"""
from __future__ import annotations

import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..bench.grid import Point, device_missing_reason, excluded_reason
from ..core.values import check_int
from ..machine.load import Load, LoadProbe, LoadTracker
from ..machine.timing import default_threads
from . import ab_checks
from .stats import compare_pairs, min_p_signed_rank
from .verdict import PointVerdict, SpeedVerdict, row_from_stats
from .workers import DEFAULT_TIMEOUT, WORKER, Side, WorkerError, WorkerProcess, hello, identity

DEFAULT_PAIRS = 30
DEFAULT_PROCESSES = 10
DEFAULT_MIN_TIME = 0.05  # seconds a repeat lasts at least


@dataclass(frozen=True)
class ABSettings:
    """How `run_ab` measures: pairs a point, untimed warm-up calls, seeds, threads, repeat length, timeout."""

    pairs: int = DEFAULT_PAIRS
    processes: int = DEFAULT_PROCESSES
    warmup: int = 1
    seed: int = 0  # make_case's seed, and the order of each pair
    threads: int | None = None
    min_time: float = DEFAULT_MIN_TIME
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        check_int("pairs", self.pairs, 2)
        check_int("processes", self.processes, 1)
        if self.processes > self.pairs:
            raise ValueError(f"processes ({self.processes}) cannot exceed pairs ({self.pairs}): each worker "
                             f"generation times at least one pair")
        check_int("warmup", self.warmup, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("min_time", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass
class PointRun:
    """One point of an A/B run: the paired seconds per call, or why it has none."""

    point: Point
    number: int = 0
    base_s: list[float] = field(default_factory=list)
    new_s: list[float] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # "BN" or "NB" per pair
    batch: list[int] = field(default_factory=list)  # the worker generation of each pair
    base_error: str = ""
    new_error: str = ""
    skipped: str = ""
    load: Load | None = None
    backends: dict[str, list[str]] = field(default_factory=dict)  # side name -> Result.backend per check
    unjudged: str = ""  # why only NaN/Inf were checked
    gradients: dict[str, bool] = field(default_factory=dict)  # side name -> False for a forward-only kernel

    @property
    def ok(self) -> bool:
        """Not skipped and not failed on either side (so far)."""
        return not (self.skipped or self.base_error or self.new_error)

    @property
    def measured(self) -> bool:
        return self.ok and len(self.base_s) >= 2

    def to_json(self) -> dict:
        return {"point": self.point.as_dict(), "number": self.number, "base_s": self.base_s, "new_s": self.new_s,
                "order": self.order, "batch": self.batch, "base_error": self.base_error, "new_error": self.new_error,
                "skipped": self.skipped, "load": self.load.to_json() if self.load else None,
                "backends": self.backends, "unjudged": self.unjudged}


class ABObserver:
    """Hooks called while `run_ab` runs; the default does nothing."""

    def started(self, base: dict, new: dict, points: int, runnable: int) -> None: ...

    def setting_up(self, index: int, point: Point) -> None: ...

    def round_done(self, done: int, total: int, seconds_left: float | None) -> None: ...

    def finished(self, interrupted: bool) -> None: ...


def exclusion_reason(point: Point) -> str | None:
    """Why `point` is not run here: a missing device or a row of the grid's EXCLUSIONS (not the registry:
    an implementation only has to exist in the workers' environments)."""
    return device_missing_reason(point) or excluded_reason(point)


def _split(total: int, parts: int) -> list[int]:
    """`total` rounds over `parts` generations, as evenly as possible: 10 over 4 -> [3, 3, 2, 2]."""
    return [total // parts + (i < total % parts) for i in range(parts)]


@dataclass
class _Job:
    """What `run_ab` shares with its steps."""

    base: Side
    new: Side
    settings: ABSettings
    threads: int
    specs: dict[str, str]
    rng: random.Random
    folder: Path
    cases: dict[str, ab_checks.PointCases] = field(default_factory=dict)

    def side_error(self, run: PointRun, name: str, error: str) -> None:
        if name == self.base.name:
            run.base_error = run.base_error or error
        else:
            run.new_error = run.new_error or error


def run_ab(base: Side, new: Side, points: Sequence[Point], *, specs: dict[str, str] | None = None,
           settings: ABSettings = ABSettings(), threshold: float = 0.05, alpha: float = 0.05,
           observer: ABObserver | None = None, cwd: str | None = None) -> SpeedVerdict:
    """Time every point on both sides alternately, judging both sides' results (module docstring), and
    judge NEW's speed against BASE's: the one verdict type of a speed comparison.

    `specs` maps an implementation name to the `module:function` each worker loads it
    from (a user's kernel); other names must be registered in the workers' lstm-bench.
    WorkerError (one line, naming the side) when a worker cannot start, dies, prints
    something that is not a reply, or does not answer within `settings.timeout` seconds.
    Ctrl-C (KeyboardInterrupt) ends the timing: the verdict covers what finished
    (`interrupted` set).
    """
    observer = observer or ABObserver()
    threads = settings.threads or default_threads()
    t0 = time.perf_counter()
    runs = [PointRun(p, skipped=exclusion_reason(p) or "") for p in points]
    live = [r for r in runs if not r.skipped]
    trackers = {r.point.key: LoadTracker(threads) for r in live}
    infos: dict[str, dict] = {}
    rounds = _split(settings.pairs, settings.processes)
    interrupted, done = True, 0
    first_round = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstm-bench-ab-") as tmp:
        job = _Job(base, new, settings, threads, specs or {}, random.Random(settings.seed), Path(tmp))
        try:
            for generation, n_rounds in enumerate(rounds):
                workers = _start(base, new, settings, cwd, job.rng)
                try:
                    for name, w in workers.items():
                        info = hello(w)
                        if name in infos and identity(info) != identity(infos[name]):
                            raise w._fail(f"changed between processes: {identity(infos[name])} then "
                                          f"{identity(info)}")
                        infos.setdefault(name, info)
                    if generation == 0:
                        observer.started(infos[base.name], infos[new.name], len(runs), len(live))
                    for i, run in enumerate(r for r in live if r.ok):
                        if generation == 0:
                            observer.setting_up(i, run.point)
                        _setup(run, workers, job, trackers[run.point.key], first=generation == 0)
                    if generation == 0:
                        first_round = time.perf_counter()
                    for _ in range(n_rounds):
                        for run in (r for r in live if r.ok):
                            _pair(run, workers, job, trackers[run.point.key], generation)
                        done += 1
                        # rounds so far, worker restarts included, extrapolated to the rounds left
                        per_round = (time.perf_counter() - first_round) / done
                        observer.round_done(done, settings.pairs, per_round * (settings.pairs - done))
                    for run in (r for r in live if r.ok):
                        _verify(run, workers, job, generation)
                finally:
                    for w in workers.values():
                        w.close()
            interrupted = False
        except KeyboardInterrupt:
            pass  # keep what finished: the pairs so far
        finally:
            observer.finished(interrupted)
    for run in live:
        if trackers[run.point.key].loads:
            run.load = trackers[run.point.key].result()
    if not infos:  # interrupted before either worker said hello: nothing to report
        raise KeyboardInterrupt
    return _verdict(runs, infos[base.name], infos[new.name], settings, threshold, alpha, threads,
                    time.perf_counter() - t0, interrupted)


def _start(base: Side, new: Side, settings: ABSettings, cwd: str | None, rng: random.Random) \
        -> dict[str, WorkerProcess]:
    workers: dict[str, WorkerProcess] = {}
    try:
        for side in rng.sample([base, new], 2):  # neither side always gets the first, fresher slot
            workers[side.name] = WorkerProcess(side, timeout=settings.timeout, cwd=cwd)
    except BaseException:
        for w in workers.values():
            w.close()
        raise
    return {base.name: workers[base.name], new.name: workers[new.name]}


def _setup(run: PointRun, workers: dict[str, WorkerProcess], job: _Job, tracker: LoadTracker, *,
           first: bool) -> None:
    """Prepare `run`'s point in both workers (random order) on the coordinator's case, judge the result of
    each side's first timed call (`ab_checks`); the first time, choose the point's `number`."""
    key = run.point.key
    if key not in job.cases:  # the cases and their float64 truths: once per point
        job.cases[key] = ab_checks.prepare(run.point, job.settings.seed, job.folder, len(job.cases))
        run.unjudged = job.cases[key].truth.unjudged
    cases = job.cases[key]
    lengths = run.point.sequence_lengths()  # drawn here: a worker may run an lstm-bench without them
    lengths = None if lengths is None else lengths.tolist()
    probe = LoadProbe.start()
    seconds = {}
    for name in job.rng.sample(list(workers), 2):
        result = job.folder / f"{name}-setup.pt"
        reply = workers[name].request({"op": "setup", "id": key, "point": run.point.as_dict(), "lengths": lengths,
                                       "spec": job.specs.get(run.point.impl), "seed": job.settings.seed,
                                       "threads": job.threads, "warmup": job.settings.warmup,
                                       "case": str(cases.case_file), "result": str(result)})
        if not reply["ok"]:
            job.side_error(run, name, str(reply.get("error")))
            continue
        run.backends.setdefault(name, []).append(str(reply.get("backend") or ""))
        run.gradients[name] = bool(reply.get("gradients", True))
        why = ab_checks.wrong_reason(result, cases.truth, run.point.torch_dtype, run.gradients[name])
        if why:
            job.side_error(run, name, f"wrong result before the timing: {why}")
        else:
            seconds[name] = float(reply["seconds"])
    tracker.add(probe)
    if first and len(seconds) == 2:
        # the same number of calls a repeat on both sides, so that a repeat lasts >= min_time
        run.number = max(1, math.ceil(job.settings.min_time / max(max(seconds.values()), 1e-9)))


def _pair(run: PointRun, workers: dict[str, WorkerProcess], job: _Job, tracker: LoadTracker,
          generation: int) -> None:
    """One pair: a repeat on each side, in random order, back to back."""
    order = job.rng.sample([job.base.name, job.new.name], 2)
    probe = LoadProbe.start()
    got = {}
    for name in order:
        reply = workers[name].request({"op": "time", "id": run.point.key, "number": run.number})
        if not reply["ok"]:
            job.side_error(run, name, str(reply.get("error")))
            break
        got[name] = float(reply["seconds"])
    tracker.add(probe)
    if len(got) == 2:
        run.base_s.append(got[job.base.name])
        run.new_s.append(got[job.new.name])
        run.order.append("".join(n[0] for n in order))
        run.batch.append(generation)


def _verify(run: PointRun, workers: dict[str, WorkerProcess], job: _Job, generation: int) -> None:
    """After a generation's pairs: judge each side's last timed output, and one call on the check case."""
    cases = job.cases[run.point.key]
    for name, w in workers.items():
        last, check = job.folder / f"{name}-last.pt", job.folder / f"{name}-check.pt"
        reply = w.request({"op": "verify", "id": run.point.key, "result": str(last),
                           "check_case": str(cases.check_file), "check_result": str(check)})
        if not reply["ok"]:
            job.side_error(run, name, f"after the timing: {reply.get('error')}")
            continue
        run.backends.setdefault(name, []).append(str(reply.get("check_backend") or ""))
        gradients = run.gradients.get(name, True)
        why = ab_checks.wrong_reason(last, cases.truth, run.point.torch_dtype, gradients)
        if why:
            calls = run.number * run.batch.count(generation)
            job.side_error(run, name, f"wrong result after {calls} timed calls (the last one's output): {why}")
            continue
        why = ab_checks.wrong_reason(check, cases.check_truth, run.point.torch_dtype, gradients)
        if why:
            job.side_error(run, name, f"wrong result after the timing on a case of new numbers in the same tensors "
                                      f"(a cached or stale result?): {why}")


def describe_side(name: str, info: dict) -> str:
    """One line: a side's executable, Python, lstm-bench (and where from), torch, injected slowdown."""
    inject = info.get("inject") or 0
    return (f"{name}: {info.get('executable')} (Python {info.get('python')}), lstm-bench {info.get('lstm_bench')} "
            f"from {info.get('lstm_bench_file')}, torch {info.get('torch')}"
            + (f", injected slowdown {100 * inject:g}%" if inject else ""))


def _backend_notes(run: PointRun, base: str, new: str) -> tuple[str, str, list[str]]:
    """(BASE's backends, NEW's backends, notes when they differ between the sides or between processes)."""
    seen = {name: sorted(set(run.backends.get(name, []))) for name in (base, new)}
    notes = []
    if seen[base] and seen[new] and seen[base] != seen[new]:
        notes.append(f"backends differ: BASE ran {', '.join(seen[base]) or '?'}, NEW ran "
                     f"{', '.join(seen[new]) or '?'} (the ratio compares them)")
    for name in (base, new):
        if len(seen[name]) > 1:
            notes.append(f"{name} ran {len(seen[name])} backends across its worker processes "
                         f"({', '.join(seen[name])}): the code timed was not the same in every process")
    return ", ".join(seen[base]), ", ".join(seen[new]), notes


def _row(run: PointRun, stats: dict, base: str, new: str) -> PointVerdict:
    if run.point.key in stats:
        row = row_from_stats(run.point, stats[run.point.key], load=run.load, paired=True)
    elif run.skipped:
        row = PointVerdict(run.point, "not compared", reason=f"skipped: {run.skipped}")
    elif run.new_error:
        row = PointVerdict(run.point, "failed", reason=run.new_error
                           + (f" (BASE too: {run.base_error})" if run.base_error else ""), load=run.load)
    elif run.base_error:
        row = PointVerdict(run.point, "not compared", load=run.load,
                           reason=f"wrong in BASE, or failed there (not NEW's doing): {run.base_error}")
    else:
        row = PointVerdict(run.point, "not compared", reason="interrupted before two pairs", load=run.load)
    row.backend_base, row.backend_new, notes = _backend_notes(run, base, new)
    row.notes += notes + ([run.unjudged] if run.unjudged else [])
    return row


def _verdict(runs: list[PointRun], base: dict, new: dict, settings: ABSettings, threshold: float, alpha: float,
             threads: int, seconds: float, interrupted: bool) -> SpeedVerdict:
    measured = {r.point.key: (r.base_s, r.new_s, r.batch) for r in runs if r.measured}
    stats = {v.key: v for v in compare_pairs(measured, threshold=threshold, alpha=alpha)} if measured else {}
    rows = [_row(r, stats, "BASE", "NEW") for r in runs]
    sides = [describe_side("BASE", base), describe_side("NEW ", new)]
    if identity(base) == identity(new):
        sides.append("  (both sides run the same lstm-bench and torch: an A/A comparison)")
    pairs = max((len(r.base_s) for r in runs), default=0)
    sides.append(f"forward+backward time per call; {pairs if interrupted else settings.pairs} pairs a point over "
                 f"{settings.processes} worker generation(s), {threads} thread(s), repeats of >= "
                 f"{settings.min_time:g} s; each side's results judged before and after the timing (tolerance "
                 f"policy of `check`)")
    verdict = SpeedVerdict("ab", "forward_backward", threshold, alpha, "holm", "pairs", rows, sides,
                           interrupted=interrupted,
                           per_batch=settings.pairs / settings.processes if settings.processes > 1 else 0.0,
                           details={"base": base, "new": new, "settings": settings.__dict__, "threads": threads,
                                    "seconds": seconds, "runs": [r.to_json() for r in runs]})
    why = underpowered(verdict)
    if why:
        verdict.warnings.append(why)
    return verdict


def underpowered(verdict: SpeedVerdict) -> str:
    """Why no point can be judged significant with this many pairs (signed-rank test, one generation), or ""."""
    k = len(verdict.verdicts)
    paired = [v for v in verdict.verdicts if v.method == "pairs"]  # the batch t-test has no floor on p
    if not paired:
        return ""
    n = min(v.n for v in paired)
    if min_p_signed_rank(n) * k >= verdict.alpha:
        return (f"with {n} pairs and {k} points no point can be judged significant at alpha={verdict.alpha} "
                f"(smallest p 2/2^{n}, times {k} for Holm); use more --pairs")
    return ""


def parse_env(items: Sequence[str] | None, flag: str) -> tuple[tuple[str, str], ...]:
    """["NAME=VALUE", ...] -> ((NAME, VALUE), ...); ValueError naming the flag for an item without '='."""
    out = []
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or any(c.isspace() for c in name):
            raise ValueError(f"{flag}: expected NAME=VALUE, got {item!r}")
        out.append((name, value))
    return tuple(out)


__all__ = ["ABObserver", "ABSettings", "PointRun", "Side", "WorkerError", "WorkerProcess", "run_ab",
           "exclusion_reason", "underpowered", "parse_env", "describe_side", "WORKER", "DEFAULT_PAIRS",
           "DEFAULT_TIMEOUT"]
