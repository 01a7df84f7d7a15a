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
    assert m.oversubscribed == m.load.oversubscribed_reason()  # the mark the tables, plots and comparisons read


def test_tracker_sums_steal_over_its_intervals_only(monkeypatch):
    readings = iter([(0, 0), (100, 10), (1000, 10), (1100, 20)])  # two intervals with 1000 jiffies between
    monkeypatch.setattr(loadmod, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(loadmod, "load_average", lambda: 1.0)
    tracker = LoadTracker(threads=1)
    for _ in range(2):
        tracker.add(loadmod.LoadProbe())
    assert tracker.result().steal == pytest.approx(0.1)  # 20 of 200, not 20 of 1100


def test_cpu_pressure_is_the_some_total_of_psi(tmp_path, monkeypatch):
    psi = tmp_path / "cpu"
    psi.write_text("some avg10=12.50 avg60=3.00 avg300=1.00 total=750872445\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    monkeypatch.setattr(loadmod, "_PRESSURE", str(psi))
    assert loadmod.cpu_pressure_us() == 750872445
    monkeypatch.setattr(loadmod, "_PRESSURE", str(tmp_path / "missing"))
    assert loadmod.cpu_pressure_us() is None  # no PSI: unknown, not an error
    # 0.3 s of waiting in 1.2 s of wall time
    assert loadmod.pressure_share(1_000_000, 1_300_000, 1.2) == pytest.approx(0.25)
    assert loadmod.pressure_share(None, 5, 1.0) is None and loadmod.pressure_share(0, 5, 0.0) is None


def test_oversubscribed_means_tasks_waited_for_a_cpu_or_steal():
    assert Load(0.5, 0.5, 0.0, 2, 2, pressure=0.5).oversubscribed_reason().startswith("tasks waited for a CPU 50%")
    # the pressure over the point itself outranks a lagging load average
    assert Load(5.0, 5.0, 0.0, 1, 2, pressure=0.02).oversubscribed_reason() is None
    assert not Load(5.0, 5.0, 0.0, 1, 2, pressure=0.02).under_load
    # without a pressure figure, the load average rule
    assert "load average 3.0 above the 2 CPUs" == Load(1.0, 3.0, 0.0, 1, 2).oversubscribed_reason()
    assert "stolen" in Load(0.5, 0.5, 0.05, 1, 2, pressure=0.0).oversubscribed_reason()
    back = Load.from_json(Load(1.0, 1.0, 0.0, 1, 2, pressure=0.3).to_json())
    assert back.pressure == 0.3 and Load.from_json({"threads": 1, "cpus": 2}).pressure is None
    with pytest.raises(ValueError, match="load.pressure"):
        Load.from_json({"threads": 1, "cpus": 2, "pressure": 1.5})


def test_other_demand_counts_runnable_tasks_less_the_sampler(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\nprocs_running 4\nprocs_blocked 0\n")
    monkeypatch.setattr(loadmod, "_STAT", str(stat))
    assert loadmod.procs_running() == 4
    assert loadmod.other_demand(seconds=0.0, samples=3) == 3.0
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\n")
    assert loadmod.other_demand(seconds=0.0, samples=3) is None


@pytest.mark.parametrize("cpus, others, threads", [
    (2, None, 2), (2, 0.0, 2), (2, 0.4, 2),  # quiet (or unknown): every CPU
    (2, 0.6, 1), (2, 1.0, 1),  # one busy neighbour on 2 CPUs: the CPU it leaves
    (2, 2.0, 1), (2, 9.0, 1),  # a neighbour on every CPU, or a crowd: still 1
    (16, 3.0, 4), (16, 14.0, 2), (1, 0.0, 1)])
def test_default_threads_are_the_cpus_left_free(cpus, others, threads):
    from lstm_bench.machine.timing import threads_for

    assert threads_for(cpus, others) == threads


def test_default_threads_follow_the_demand_measured_once(monkeypatch):
    from lstm_bench.machine import timing

    monkeypatch.delenv(timing.THREADS_ENV, raising=False)
    monkeypatch.setattr(timing, "cpus_available", lambda: 2)
    monkeypatch.setattr(loadmod, "other_demand", lambda: 1.0)
    timing._threads_by_demand.cache_clear()
    try:
        assert timing.default_threads() == 1
        monkeypatch.setattr(loadmod, "other_demand", lambda: 0.0)
        assert timing.default_threads() == 1  # measured once per process: a sweep keeps its count
        monkeypatch.setenv(timing.THREADS_ENV, "2")
        assert timing.default_threads() == 2  # the variable wins
    finally:
        timing._threads_by_demand.cache_clear()
