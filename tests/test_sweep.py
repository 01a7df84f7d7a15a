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


# Measured / modelled seconds of each CPU point of QUICK_GRID in grid order (reference, vectorised,
# autograd, nn_lstm, nn_lstm_native; T = 10, 100 x B = 1, 32), from a sweep with 3 repeats and
# 1 thread on a 2-core AMD EPYC at load average 10.3-10.7 (2026-12-04): the first point pays the
# process's set-up, the reference runs 4-10x the model, the fused paths 0.2-2x.
MEASURED_RATIOS = [67.7, 4.0, 9.6, 5.5, 0.8, 2.0, 0.2, 0.5, 1.7, 1.3, 2.6, 2.6, 3.2, 0.8, 0.3, 0.6, 1.6, 1.5, 2.9, 1.6]


def test_the_time_left_is_right_within_2x_from_the_second_point_on():
    """The main job's sweep as measured: once two points are done, the estimate is within 2x of
    what is really left (the estimate it replaces said ~569 ms left of 15 s: 0.04x)."""
    from lstm_bench.bench.grid import QUICK_GRID
    from lstm_bench.bench.sweep import TimeLeft, point_cost

    settings = SweepSettings(repeats=3)
    points = [p for p in QUICK_GRID.points() if p.device == "cpu"]
    assert [p.impl for p in points[::4]] == ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"]
    costs = [point_cost(p, settings, None) for p in points]
    actual = [c * r for c, r in zip(costs, MEASURED_RATIOS)]
    now = [0.0]
    left = TimeLeft(costs, [p.impl for p in points], clock=lambda: now[0])
    assert left.seconds_left() == pytest.approx(sum(costs))  # before any point: the model
    for i, seconds in enumerate(actual[:-1]):
        now[0] += seconds
        left.advance(i)
        truth = sum(actual[i + 1:])
        if i >= 1:
            assert truth / 2 <= left.seconds_left() <= 2 * truth, (i, points[i].impl, left.seconds_left(), truth)
        else:  # the first point alone: the model, not 68x it
            assert left.seconds_left() == pytest.approx(sum(costs[1:]))


def test_the_correction_is_per_implementation_and_median():
    from lstm_bench.bench.sweep import TimeLeft, lower_median

    assert lower_median([5.0, 1.0]) == 1.0 and lower_median([3.0, 1.0, 2.0]) == 2.0
    now = [0.0]
    left = TimeLeft([1.0] * 6, ["slow"] * 3 + ["fast"] * 3, clock=lambda: now[0])
    for i, spent in enumerate([50.0, 10.0, 10.0]):  # the first point pays a set-up of 40 s
        now[0] += spent
        left.advance(i)
    assert left.factor("slow") == 10.0  # lower median of 50, 10, 10
    assert left.factor("fast") == 1.0  # unseen: the lower median of 1 and 10, not the slow one's 10
    assert left.seconds_left() == pytest.approx(3.0)
    now[0] += 2.0
    left.advance(3)
    assert left.factor("fast") == 2.0 and left.seconds_left() == pytest.approx(4.0)


def test_the_cost_model_counts_the_verdicts_calls():
    from lstm_bench.bench.grid import Point
    from lstm_bench.bench.sweep import POINT_OVERHEAD_S, STEP_OVERHEAD_S, point_cost

    p = Point("vectorised", 100, 1, 64, 64)
    rate = 200.0 * 0.3 * 1e9
    one = p.flops / rate + 100 * STEP_OVERHEAD_S
    timed = SweepSettings(repeats=3, warmup=1, accuracy=False, memory=False)
    assert point_cost(p, timed, 200.0) == pytest.approx(POINT_OVERHEAD_S + (4 * 4 / 3 + 1) * one)
    judged = SweepSettings(repeats=3, warmup=1, accuracy=True, memory=False)
    # two draws judged, each a float64 truth and 2 perturbed float64 runs, each ~2 calls
    assert point_cost(p, judged, 200.0) - point_cost(p, timed, 200.0) == pytest.approx(12 * one)
    assert point_cost(Point("vectorised", 500, 32, 1024, 1024), judged, 200.0) > 50 * point_cost(p, judged, 200.0)


def test_a_resumed_sweep_keeps_its_files_thread_count_by_default(tmp_path, monkeypatch):
    # The default thread count follows the machine's load; resuming must not be refused for it.
    from lstm_bench.machine import timing

    monkeypatch.delenv("LSTM_BENCH_THREADS", raising=False)
    out = tmp_path / "r.jsonl"
    threads = torch.get_num_threads()
    try:
        run_sweep(TINY, out, settings=FAST, threads=1, peak=False)
        monkeypatch.setattr(timing, "default_threads", lambda: 2)  # the machine looks quiet now
        outcome = run_sweep(TINY, out, settings=FAST, peak=False, resume=True)
    except ResultsError as err:
        pytest.fail(f"resume refused: {err}")
    finally:
        torch.set_num_threads(threads)
    assert outcome.results.env["threads"] == 1 and outcome.counts["resumed"] == 4
