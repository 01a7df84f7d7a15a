"""Load awareness: steal from /proc/stat deltas, the "under load" rule, and what a point records."""
from __future__ import annotations

import pytest

from lstm_bench.machine import load as loadmod
from lstm_bench.machine.load import Load, LoadTracker, steal_fraction, summarise


def test_steal_is_the_share_of_all_cpu_time_between_two_readings():
    # /proc/stat aggregate line: user nice system idle iowait irq softirq steal
    assert steal_fraction((1000, 10), (2000, 60)) == pytest.approx(0.05)
    assert steal_fraction(None, (2000, 60)) is None and steal_fraction((5, 1), (5, 1)) is None


def test_cpu_times_parses_the_aggregate_line(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
    monkeypatch.setattr(loadmod, "_STAT", str(stat))
    assert loadmod.cpu_times() == (1000, 35)
    monkeypatch.setattr(loadmod, "_STAT", str(tmp_path / "missing"))
    assert loadmod.cpu_times() is None  # not Linux: steal unknown, not an error


def test_under_load_means_more_runnable_threads_than_cpus_or_steal():
    assert not Load(1.9, 2.0, 0.0, 2, 2).under_load  # our own 2 threads on 2 CPUs
    assert Load(1.0, 3.5, 0.0, 2, 2).under_load
    assert Load(0.5, 0.5, 0.05, 1, 2).under_load  # the hypervisor took 5 %
    assert Load(0.5, 0.5, None, 1, 2, load_peak=4.0).under_load
    assert "load average 1.0-3.5 on 2 CPUs, 0.0% steal, 2 threads" == Load(1.0, 3.5, 0.0, 2, 2).describe()
    both = summarise([Load(1.0, 1.2, 0.0, 1, 2), Load(0.8, 3.0, 0.03, 1, 2)])
    assert (both.load_start, both.load_max, both.steal) == (0.8, 3.0, 0.03)


def test_a_measured_point_records_its_load():
    from lstm_bench.bench.grid import Point
    from lstm_bench.bench.measure import measure_point

    m = measure_point(Point("vectorised", 2, 1, 4, 4), threads=1, repeats=2, accuracy=False, memory=False)
    assert m.load is not None and m.load.threads == 1 and m.load.cpus >= 1
    assert m.load.load_start is not None and m.load.load_end is not None  # Linux has a load average
    assert m.load.steal is None or 0 <= m.load.steal <= 1


def test_tracker_sums_steal_over_its_intervals_only(monkeypatch):
    readings = iter([(0, 0), (100, 10), (1000, 10), (1100, 20)])  # two intervals with 1000 jiffies between
    monkeypatch.setattr(loadmod, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(loadmod, "load_average", lambda: 1.0)
    tracker = LoadTracker(threads=1)
    for _ in range(2):
        tracker.add(loadmod.LoadProbe())
    assert tracker.result().steal == pytest.approx(0.1)  # 20 of 200, not 20 of 1100
