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

Prior art: asv's `--interleave-rounds` interleaves whole benchmark processes; pyperf
spreads a benchmark over worker processes; Google Benchmark's compare.py runs a U test
on repetitions (and wants >= 9 of them). Here the unit of the test is the generation of
worker processes, and each of its observations is already a paired, load-cancelled ratio.
"""
from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..bench.grid import Point, device_missing_reason, excluded_reason
from ..machine.load import Load, LoadProbe, LoadTracker, summarise
from .stats import PointComparison, compare_pairs, min_p_signed_rank

WORKER = Path(__file__).resolve().parent / "ab_worker.py"
DEFAULT_PAIRS = 30
DEFAULT_PROCESSES = 10
DEFAULT_MIN_TIME = 0.05  # seconds a repeat lasts at least
DEFAULT_TIMEOUT = 600.0  # seconds one request may take before the worker is called hung
HELLO_TIMEOUT = 120.0  # importing torch on a loaded machine


class WorkerError(Exception):
    """A worker that cannot be started, died, printed garbage or hung: one line naming the side."""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: its Python executable and extra environment variables."""

    name: str
    python: str
    env: tuple[tuple[str, str], ...] = ()


class WorkerProcess:
    """One side's worker: JSON lines over its stdin/stdout, every read under a timeout."""

    def __init__(self, side: Side, *, timeout: float = DEFAULT_TIMEOUT, cwd: str | None = None) -> None:
        self.side = side
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.update(dict(side.env))
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.proc = subprocess.Popen([side.python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, env=env, cwd=cwd, start_new_session=True)
        except OSError as err:
            self.stderr.close()
            raise WorkerError(f"{side.name} python {side.python!r} cannot be started ({err.strerror or err})") \
                from None
        self.buffer = b""

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = [line.strip() for line in self.stderr.read().decode("utf-8", "replace").splitlines()]
        except (OSError, ValueError):
            return ""
        lines = [line for line in lines if line]
        return lines[-1][:300] if lines else ""

    def _fail(self, what: str) -> WorkerError:
        self.kill()
        tail = self._stderr_tail()
        return WorkerError(f"{self.side.name} worker ({self.side.python}) {what}" + (f"; its last words: {tail}"
                                                                                   if tail else ""))

    def _readline(self, timeout: float, op: str) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"did not answer {op!r} within {timeout:g} s (hung?); it was killed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait(timeout=10)
                raise self._fail(f"exited with code {code} during {op!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def request(self, msg: dict, timeout: float | None = None) -> dict:
        """Send one request, return its reply (a dict with "ok"); WorkerError if the worker fails us."""
        op = msg.get("op", "?")
        if self.proc.stdin.closed:
            raise WorkerError(f"{self.side.name} worker ({self.side.python}) was closed before {op!r}")
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            code = self.proc.poll()
            raise self._fail(f"exited with code {code} before {op!r}") from None
        line = self._readline(self.timeout if timeout is None else timeout, op)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            text = line.decode("utf-8", "replace")[:80]
            raise self._fail(f"answered {op!r} with something that is not a protocol reply: {text!r}")
        return reply

    def kill(self) -> None:
        """Kill the worker and anything it started (it leads its own process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within a few seconds."""
        if self.proc.poll() is None:
            try:
                self.request({"op": "quit"}, timeout=5)
                self.proc.wait(timeout=5)
            except (WorkerError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.stderr.close()


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
        from ..core.values import check_int

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
                "skipped": self.skipped, "load": self.load.to_json() if self.load else None}


@dataclass
class ABResult:
    """What `run_ab` found. It fails (`failed`) on a regression or on a point that failed in NEW."""

    base: dict  # the workers' hello replies: versions, executable, pid, injected slowdown
    new: dict
    settings: ABSettings
    threshold: float
    alpha: float
    threads: int
    runs: list[PointRun]
    verdicts: list[PointComparison]
    seconds: float  # wall time of the whole comparison

    @property
    def points(self) -> dict[str, Point]:
        return {r.point.key: r.point for r in self.runs}

    @property
    def regressions(self) -> list[PointComparison]:
        return [v for v in self.verdicts if v.regression]

    @property
    def broken(self) -> list[PointRun]:
        """Points that failed in NEW (whatever BASE did)."""
        return [r for r in self.runs if r.new_error]

    @property
    def base_broken(self) -> list[PointRun]:
        """Points that failed in BASE only: not compared, not NEW's fault."""
        return [r for r in self.runs if r.base_error and not r.new_error]

    @property
    def skipped(self) -> list[PointRun]:
        return [r for r in self.runs if r.skipped]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.broken)

    @property
    def load(self) -> Load | None:
        return summarise([r.load for r in self.runs if r.load is not None])

    def counts(self) -> dict[str, int]:
        return {s: sum(v.verdict == s for v in self.verdicts) for s in ("faster", "slower", "no change")}

    def to_json(self) -> dict:
        return {"kind": "lstm-bench-ab", "version": 1, "base": self.base, "new": self.new,
                "settings": self.settings.__dict__, "threshold": self.threshold, "alpha": self.alpha,
                "threads": self.threads, "seconds": self.seconds, "runs": [r.to_json() for r in self.runs],
                "verdicts": [v.to_dict() for v in self.verdicts]}


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


def _hello(worker: WorkerProcess) -> dict:
    reply = worker.request({"op": "hello"}, timeout=min(worker.timeout, HELLO_TIMEOUT))
    if not reply["ok"]:
        raise worker._fail(f"cannot run the comparison: {reply.get('error')}")
    return {k: v for k, v in reply.items() if k != "ok"}


def _split(total: int, parts: int) -> list[int]:
    """`total` rounds over `parts` generations, as evenly as possible: 10 over 4 -> [3, 3, 2, 2]."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def run_ab(base: Side, new: Side, points: Sequence[Point], *, specs: dict[str, str] | None = None,
           settings: ABSettings = ABSettings(), threshold: float = 0.05, alpha: float = 0.05,
           observer: ABObserver | None = None, cwd: str | None = None) -> ABResult:
    """Time every point on both sides alternately (module docstring) and judge NEW against BASE.

    `specs` maps an implementation name to the `module:function` each worker loads it
    from (a user's kernel); other names must be registered in the workers' lstm-bench.
    WorkerError (one line, naming the side) when a worker cannot start, dies, prints
    something that is not a reply, or does not answer within `settings.timeout` seconds.
    """
    from ..machine.timing import default_threads

    observer = observer or ABObserver()
    specs = specs or {}
    threads = settings.threads or default_threads()
    rng = random.Random(settings.seed)
    t0 = time.perf_counter()
    runs = [PointRun(p, skipped=exclusion_reason(p) or "") for p in points]
    live = [r for r in runs if not r.skipped]
    trackers = {r.point.key: LoadTracker(threads) for r in live}
    hello: dict[str, dict] = {}
    rounds = _split(settings.pairs, settings.processes)
    interrupted, done = True, 0
    first_round = time.perf_counter()
    try:
        for generation, n_rounds in enumerate(rounds):
            workers = _start(base, new, settings, cwd, rng)
            try:
                for name, w in workers.items():
                    info = _hello(w)
                    if name in hello and _identity(info) != _identity(hello[name]):
                        raise w._fail(f"changed between processes: {_identity(hello[name])} then {_identity(info)}")
                    hello.setdefault(name, info)
                if generation == 0:
                    observer.started(hello[base.name], hello[new.name], len(runs), len(live))
                for i, run in enumerate(r for r in live if r.ok):
                    if generation == 0:
                        observer.setting_up(i, run.point)
                    _setup(run, workers, base, settings, threads, specs, rng, trackers[run.point.key],
                           first=generation == 0)
                if generation == 0:
                    first_round = time.perf_counter()
                for _ in range(n_rounds):
                    for run in (r for r in live if r.ok):
                        _pair(run, workers, base, new, rng, trackers[run.point.key], generation)
                    done += 1
                    # rounds so far, worker restarts included, extrapolated to the rounds left
                    per_round = (time.perf_counter() - first_round) / done
                    observer.round_done(done, settings.pairs, per_round * (settings.pairs - done))
            finally:
                for w in workers.values():
                    w.close()
        for run in live:
            run.load = trackers[run.point.key].result()
        interrupted = False
    finally:
        observer.finished(interrupted)
    measured = {r.point.key: (r.base_s, r.new_s, r.batch) for r in runs if r.measured}
    verdicts = compare_pairs(measured, threshold=threshold, alpha=alpha) if measured else []
    return ABResult(hello[base.name], hello[new.name], settings, threshold, alpha, threads, runs, verdicts,
                    time.perf_counter() - t0)


def _identity(info: dict) -> tuple:
    return info.get("lstm_bench"), info.get("lstm_bench_file"), info.get("torch"), info.get("inject")


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


def _fail_side(run: PointRun, name: str, base: Side, error: str) -> None:
    setattr(run, "base_error" if name == base.name else "new_error", error)


def _setup(run: PointRun, workers: dict[str, WorkerProcess], base: Side, settings: ABSettings, threads: int,
           specs: dict[str, str], rng: random.Random, tracker: LoadTracker, *, first: bool) -> None:
    """Prepare `run`'s point in both workers (random order); the first time, choose its `number`."""
    lengths = run.point.sequence_lengths()  # drawn here: a worker may run an lstm-bench without them
    lengths = None if lengths is None else lengths.tolist()
    probe = LoadProbe.start()
    seconds = {}
    for name in rng.sample(list(workers), 2):
        reply = workers[name].request({"op": "setup", "id": run.point.key, "point": run.point.as_dict(),
                                       "lengths": lengths,
                                       "spec": specs.get(run.point.impl), "seed": settings.seed,
                                       "threads": threads, "warmup": settings.warmup})
        if reply["ok"]:
            seconds[name] = float(reply["seconds"])
        else:
            _fail_side(run, name, base, str(reply.get("error")))
    tracker.add(probe)
    if first and len(seconds) == 2:
        # the same number of calls a repeat on both sides, so that a repeat lasts >= min_time
        run.number = max(1, math.ceil(settings.min_time / max(max(seconds.values()), 1e-9)))


def _pair(run: PointRun, workers: dict[str, WorkerProcess], base: Side, new: Side, rng: random.Random,
          tracker: LoadTracker, generation: int) -> None:
    """One pair: a repeat on each side, in random order, back to back."""
    order = rng.sample([base.name, new.name], 2)
    probe = LoadProbe.start()
    got = {}
    for name in order:
        reply = workers[name].request({"op": "time", "id": run.point.key, "number": run.number})
        if not reply["ok"]:
            _fail_side(run, name, base, str(reply.get("error")))
            break
        got[name] = float(reply["seconds"])
    tracker.add(probe)
    if len(got) == 2:
        run.base_s.append(got[base.name])
        run.new_s.append(got[new.name])
        run.order.append("".join(n[0] for n in order))
        run.batch.append(generation)


def underpowered(result: ABResult) -> str:
    """Why no point can be judged significant with this many pairs (signed-rank test, one generation), or ""."""
    k = len(result.verdicts)
    paired = [v for v in result.verdicts if v.method == "pairs"]  # the batch t-test has no floor on p
    if not paired:
        return ""
    n = min(v.n for v in paired)
    if min_p_signed_rank(n) * k >= result.alpha:
        return (f"with {n} pairs and {k} points no point can be judged significant at alpha={result.alpha} "
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


__all__ = ["ABObserver", "ABResult", "ABSettings", "PointRun", "Side", "WorkerError", "WorkerProcess", "run_ab",
           "exclusion_reason", "underpowered", "parse_env", "WORKER", "DEFAULT_PAIRS"]
