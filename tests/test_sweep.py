"""run_sweep as library code: the thread count is a parameter, the observer sees every point, nothing is lost."""
from __future__ import annotations

import os

import pytest
import torch

from lstm_bench.bench.grid import Grid
from lstm_bench.bench.results import ResultsError, load
from lstm_bench.bench.sweep import SweepObserver, SweepSettings, run_sweep

TINY = Grid(impls=("vectorised", "no_such_impl"), T=(2, 3), H=(4,), B=(1,), devices=("cpu",))
FAST = SweepSettings(repeats=2, warmup=0, accuracy=False, memory=False)


class Recorder(SweepObserver):
    def __init__(self):
        self.events = []

    def started(self, plan):
        self.events.append(("started", len(plan.points), len(plan.todo), plan.threads))

    def measuring(self, index, point, seconds_left):
        self.events.append(("measuring", point.key))

    def measured(self, index, record, seconds_left):
        self.events.append(("measured", record.key, record.status))

    def finished(self, interrupted):
        self.events.append(("finished", interrupted))


def test_threads_are_a_parameter_not_an_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LSTM_BENCH_THREADS", raising=False)
    before = dict(os.environ)
    threads = torch.get_num_threads()
    try:
        outcome = run_sweep(TINY, tmp_path / "r.jsonl", settings=FAST, threads=1, peak=False)
    finally:
        torch.set_num_threads(threads)
    assert dict(os.environ) == before  # nothing written behind the caller's back
    assert outcome.results.env["threads"] == 1
    assert outcome.counts == {"ok": 2, "failed": 0, "skipped": 2, "resumed": 0}
    assert [r.status for r in load(tmp_path / "r.jsonl").records] == ["ok", "ok", "skipped", "skipped"]


def test_the_observer_sees_every_point_in_order(tmp_path):
    rec = Recorder()
    run_sweep(TINY, tmp_path / "r.jsonl", settings=FAST, threads=1, peak=False, observer=rec)
    v2, v3 = "vectorised|T=2|B=1|I=4|H=4|cpu|float32", "vectorised|T=3|B=1|I=4|H=4|cpu|float32"
    assert rec.events[0] == ("started", 4, 4, 1)
    assert rec.events[1:5] == [("measuring", v2), ("measured", v2, "ok"), ("measuring", v3), ("measured", v3, "ok")]
    assert [e[2] for e in rec.events[5:7]] == ["skipped", "skipped"]  # skipped points are not "measuring"
    assert rec.events[-1] == ("finished", False)


def test_an_existing_file_is_refused_before_anything_runs_and_resume_continues(tmp_path):
    out = tmp_path / "r.jsonl"
    run_sweep(TINY.replace(T=(2,)), out, settings=FAST, threads=1, peak=False)
    before = out.read_bytes()
    rec = Recorder()
    with pytest.raises(ResultsError, match="already exists"):
        run_sweep(TINY.replace(T=(2,)), out, settings=FAST, threads=1, peak=False, observer=rec)
    assert rec.events == [] and out.read_bytes() == before
    with pytest.raises(ResultsError, match="cannot resume.*grid"):  # another grid: refused
        run_sweep(TINY, out, settings=FAST, threads=1, peak=False, resume=True)
    outcome = run_sweep(TINY.replace(T=(2,)), out, settings=FAST, threads=1, peak=False, resume=True)
    assert outcome.counts["resumed"] == 2 and out.read_bytes() == before  # nothing left to do


def test_settings_are_checked():
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        SweepSettings(repeats=0)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        SweepSettings(warmup=-1)


def test_the_time_left_is_sane_from_the_first_point_on():
    """A 5-second sweep whose first point is slow (imports, lazy initialisation) and tiny in FLOPs.

    The old estimate, elapsed / FLOPs done * FLOPs left, said "~3h04m left" after such a first
    point; the cost model with a shrunk correction stays within a small factor of the truth."""
    from lstm_bench.bench.grid import QUICK_GRID, Point
    from lstm_bench.bench.sweep import TimeLeft, point_cost

    settings = SweepSettings(repeats=7)
    points = [p for p in QUICK_GRID.points() if p.device == "cpu"]
    costs = [point_cost(p, settings, 200.0) for p in points]
    # what the points really take: 2x the model, plus 1 s of first-call overhead on the first
    actual = [2 * c for c in costs]
    actual[0] += 1.0
    now = [0.0]
    left = TimeLeft(costs, clock=lambda: now[0])
    assert left.seconds_left() == pytest.approx(sum(costs))  # before any point: the model
    for i, seconds in enumerate(actual[:-1]):
        now[0] += seconds
        left.advance(i)
        truth = sum(actual[i + 1:])
        assert truth / 5 < left.seconds_left() < 5 * truth, (i, left.seconds_left(), truth)
    flops = [p.flops for p in points]
    old = actual[0] / flops[0] * sum(flops[1:])  # the estimate it replaces, after the first point
    assert old > 50 * sum(actual[1:])
    assert point_cost(Point("vectorised", 500, 32, 1024, 1024), settings, 200.0) > \
        50 * point_cost(Point("vectorised", 10, 1, 64, 64), settings, 200.0)
