"""How busy the machine was while a point was measured: load average, CPU steal, threads.

A timing taken while other jobs compete for the CPU (or while the hypervisor gives our
virtual CPUs to other guests: *steal* time) is slower and noisier than the code is.
`LoadProbe.start()` / `.stop(threads)` bracket a measurement and give a `Load`:

    load_start, load_end   1-minute load average (/proc/loadavg; os.getloadavg elsewhere)
                           when the point started and ended
    load_peak              the highest 1-minute load average sampled in between, when it
                           was sampled (`lstm-bench ab` samples at every pair); else None
    steal                  fraction of all CPU time over the point that the hypervisor
                           stole: delta(steal) / delta(total) of the aggregate "cpu" line
                           of /proc/stat (Linux); None where that file does not exist
    threads                torch's intra-op thread count of the measurement
    cpus                   CPUs of the machine (os.cpu_count)
    pressure               share of the point's wall time in which some runnable task waited
                           for a CPU: delta("some" total) / delta(wall) of /proc/pressure/cpu
                           (Linux >= 4.20 with PSI); None where that file does not exist

`Load.oversubscribed_reason()` is the rule every command uses to say "measured while the
machine was oversubscribed" (and `under_load` is that reason being set):
- CPU pressure above 10% of the point's time: tasks (ours or others') were runnable with
  no CPU to run on. This is measured over exactly the point, and a lone benchmark whose
  threads fit the CPUs stays near 0;
- where there is no pressure figure, the 1-minute load average above the CPU count at
  either end (more runnable threads than CPUs; our own measuring threads count too). It
  is an exponentially damped mean that lags a burst by tens of seconds, so it says the
  machine was busy around the point, not inside which repeat;
- more than 2% of CPU time stolen by the hypervisor.

`other_demand()` counts the runnable tasks of other processes right now (the mean of
/proc/stat's procs_running over a short window, less the sampler itself): what
`lstm_bench.machine.timing.default_threads` sizes the thread count by (docs/measurement.md).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

STEAL_LIMIT = 0.02  # above this fraction of stolen CPU time a point was taken "under load"
# Above this share of the point's time with a runnable task waiting for a CPU, the point was
# measured oversubscribed (docs/measurement.md has the pressure read beside each neighbour).
PRESSURE_LIMIT = 0.10
_STAT = "/proc/stat"
_PRESSURE = "/proc/pressure/cpu"


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def cpu_times() -> tuple[int, int] | None:
    """(total, steal) jiffies of the aggregate "cpu" line of /proc/stat, or None without one.

    Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time
    is already inside user, so the total is the sum of the first eight."""
    try:
        with open(_STAT, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    try:
        values = [int(x) for x in fields[1:9]]
    except ValueError:
        return None
    return sum(values), values[7]


def cpu_pressure_us() -> int | None:
    """Microseconds in which some runnable task waited for a CPU since boot (the "some" line's
    total of /proc/pressure/cpu, Linux PSI), or None where the kernel has no such file."""
    try:
        with open(_PRESSURE, encoding="ascii") as f:
            line = f.readline().split()
    except OSError:
        return None
    if not line or line[0] != "some":
        return None
    for field in line[1:]:
        if field.startswith("total="):
            try:
                return int(field[len("total="):])
            except ValueError:
                return None
    return None


def pressure_share(start: int | None, end: int | None, seconds: float) -> float | None:
    """The share of `seconds` of wall time in which some task waited for a CPU, from two
    `cpu_pressure_us()` readings; None if unknown or no time passed."""
    if start is None or end is None or seconds <= 0:
        return None
    return max(0.0, min(1.0, (end - start) / 1e6 / seconds))


def procs_running() -> int | None:
    """Tasks running or runnable on the whole machine right now (/proc/stat's procs_running), or None."""
    try:
        with open(_STAT, encoding="ascii") as f:
            for line in f:
                if line.startswith("procs_running "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def other_demand(seconds: float = 0.1, samples: int = 10) -> float | None:
    """How many CPUs other processes want right now: the mean of `procs_running()` over
    `samples` readings across `seconds`, less 1 for the sampling thread itself (ours do
    nothing meanwhile). None where /proc/stat has no such count (then nothing is assumed)."""
    counts = []
    for i in range(samples):
        n = procs_running()
        if n is None:
            return None
        counts.append(n)
        if i + 1 < samples:
            time.sleep(seconds / samples)
    return max(0.0, sum(counts) / len(counts) - 1)


def steal_fraction(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Stolen share of the CPU time between two `cpu_times()` readings; None if unknown or no time passed."""
    if start is None or end is None:
        return None
    total, steal = end[0] - start[0], end[1] - start[1]
    if total <= 0:
        return None
    return max(0.0, min(1.0, steal / total))


def _number(name: str, value: object, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"load.{name} must be a number >= 0{' or null' if optional else ''}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Load:
    """The machine's load around one measured point (see the module docstring)."""

    load_start: float | None
    load_end: float | None
    steal: float | None
    threads: int
    cpus: int
    load_peak: float | None = None
    pressure: float | None = None

    @property
    def load_max(self) -> float | None:
        known = [x for x in (self.load_start, self.load_end, self.load_peak) if x is not None]
        return max(known) if known else None

    def oversubscribed_reason(self) -> str | None:
        """Why the point was measured on an oversubscribed machine (module docstring), or None."""
        reasons = []
        if self.pressure is not None:
            if self.pressure > PRESSURE_LIMIT:
                reasons.append(f"tasks waited for a CPU {100 * self.pressure:.0f}% of the time (CPU pressure above "
                               f"{100 * PRESSURE_LIMIT:.0f}%)")
        elif self.load_max is not None and self.load_max > self.cpus:
            reasons.append(f"load average {self.load_max:.1f} above the {self.cpus} CPUs")
        if self.steal is not None and self.steal > STEAL_LIMIT:
            reasons.append(f"{100 * self.steal:.1f}% of CPU time stolen by the hypervisor")
        return "; ".join(reasons) or None

    @property
    def under_load(self) -> bool:
        """Busier than a lone benchmark can make the machine: `oversubscribed_reason()` is set."""
        return self.oversubscribed_reason() is not None

    def describe(self) -> str:
        """e.g. "load average 3.1-4.0 on 2 CPUs, 0.5% steal, 2 threads"."""
        lo = [x for x in (self.load_start, self.load_end, self.load_peak) if x is not None]
        avg = (f"load average {min(lo):.1f}-{max(lo):.1f}" if lo and min(lo) != max(lo)
               else f"load average {lo[0]:.1f}" if lo else "load average unknown")
        steal = f"{100 * self.steal:.1f}% steal" if self.steal is not None else "steal unknown"
        pressure = f", {100 * self.pressure:.0f}% CPU pressure" if self.pressure is not None else ""
        return f"{avg} on {self.cpus} CPUs, {steal}{pressure}, {self.threads} threads"

    def to_json(self) -> dict:
        d = {"load_start": self.load_start, "load_end": self.load_end, "steal": self.steal,
             "threads": self.threads, "cpus": self.cpus}
        if self.load_peak is not None:
            d["load_peak"] = self.load_peak
        if self.pressure is not None:
            d["pressure"] = self.pressure
        return d

    @classmethod
    def from_json(cls, d: object) -> "Load":
        """From a stored record; ValueError naming the field."""
        if not isinstance(d, dict):
            raise ValueError(f"load must be an object, got {d!r}")
        for name in ("threads", "cpus"):
            v = d.get(name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"load.{name} must be a positive int, got {v!r}")
        steal, pressure = _number("steal", d.get("steal")), _number("pressure", d.get("pressure"))
        for name, share in (("steal", steal), ("pressure", pressure)):
            if share is not None and share > 1:
                raise ValueError(f"load.{name} must be a fraction in [0, 1] or null, got {share!r}")
        return cls(_number("load_start", d.get("load_start")), _number("load_end", d.get("load_end")),
                   steal, d["threads"], d["cpus"], _number("load_peak", d.get("load_peak")), pressure)


def summarise(loads: list[Load]) -> Load | None:
    """One `Load` spanning several points: the lowest start, highest end, largest steal; None for none."""
    if not loads:
        return None
    starts = [x.load_start for x in loads if x.load_start is not None]
    ends = [x.load_max for x in loads if x.load_max is not None]
    steals = [x.steal for x in loads if x.steal is not None]
    pressures = [x.pressure for x in loads if x.pressure is not None]
    return Load(min(starts) if starts else None, max(ends) if ends else None, max(steals) if steals else None,
                max(x.threads for x in loads), max(x.cpus for x in loads),
                pressure=max(pressures) if pressures else None)


class LoadTracker:
    """Load over many short, separate intervals of one point (the pairs of `ab`): `add(probe)` after each.

    Steal is summed over the intervals only (not the time other points ran in between)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.loads: list[float] = []
        self.total = self.steal = 0
        self.waited_us: int | None = 0
        self.seconds = 0.0

    def add(self, probe: "LoadProbe") -> None:
        now, times, waited, wall = load_average(), cpu_times(), cpu_pressure_us(), time.monotonic()
        for x in (probe.load, now):
            if x is not None:
                self.loads.append(x)
        if probe.times is not None and times is not None:
            self.total += times[0] - probe.times[0]
            self.steal += times[1] - probe.times[1]
        if self.waited_us is not None and probe.waited_us is not None and waited is not None:
            self.waited_us += waited - probe.waited_us
            self.seconds += wall - probe.wall
        else:
            self.waited_us = None

    def result(self) -> Load:
        first = self.loads[0] if self.loads else None
        last = self.loads[-1] if self.loads else None
        steal = steal_fraction((0, 0), (self.total, self.steal))  # the intervals' sums, as one reading
        return Load(first, last, steal, self.threads, os.cpu_count() or 1, max(self.loads) if self.loads else None,
                    pressure_share(0, self.waited_us, self.seconds))


class LoadProbe:
    """Brackets a measurement: `probe = LoadProbe.start()`, measure, `probe.stop(threads)` -> `Load`."""

    def __init__(self) -> None:
        self.load = load_average()
        self.times = cpu_times()
        self.waited_us = cpu_pressure_us()
        self.wall = time.monotonic()

    @classmethod
    def start(cls) -> "LoadProbe":
        return cls()

    def stop(self, threads: int) -> Load:
        return Load(self.load, load_average(), steal_fraction(self.times, cpu_times()), threads,
                    os.cpu_count() or 1,
                    pressure=pressure_share(self.waited_us, cpu_pressure_us(), time.monotonic() - self.wall))
