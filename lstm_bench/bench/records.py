"""The typed records of a sweep: what was measured at a point, and how the point ended.

A `PointRecord` is one line of a results file (`lstm_bench.bench.results`): the `Point`, its
status ("ok", "failed" or "skipped"), and the `Measurement` (ok), the error (failed) or
the reason (skipped). Only what cannot be derived is stored: the point's key, its FLOPs,
GFLOP/s and the medians follow from the point and the samples; the thread count and the
torch version are in the file's header.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..machine.gpu_timing import GpuFigures
from ..machine.load import Load
from .flops import FORWARD, STEP, TIMED
from .grid import Point

STATUSES = ("ok", "failed", "skipped")


def _seconds(name: str, value: object) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in value):
        raise ValueError(f"measurement.{name} must be a list of positive seconds, got {value!r}")
    return tuple(float(x) for x in value)


def _optional(name: str, value: object, kind: type) -> object:
    if kind is float and value in ("nan", "inf", "-inf"):  # how strict JSON (lstm_bench.core.strict_json) stores them
        return float(value)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)) or \
            (kind is float and isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"measurement.{name} must be a {kind.__name__} or null, got {value!r}")


@dataclass(frozen=True)
class Measurement:
    """One point's figures (`lstm_bench.bench.measure.measure_point`).

    forward_s, forward_backward_s   seconds per call, one per repeat; forward_s is empty
                                    when the implementation has no forward/backward halves;
                                    forward_backward_s is the timed call, the forward alone
                                    when `timed` is "forward"
    timed                           what the timed call is (`flops.TIMED`): "forward+backward",
                                    or "forward" for a kernel declared forward-only
                                    (`gradients=False`), whose GFLOP/s counts the forward's FLOPs
                                    and whose verdict judges output, h_n and c_n
    saved_bytes, peak_bytes         `lstm_bench.machine.memory`; None when not measured
    max_rel_error                   max over the outputs and every gradient of
                                    max|a - b| / max|b|, b the float64 reference; None when not measured
    backend                         what ran (`Result.backend`)
    load                            the machine's load around the point (`lstm_bench.machine.load.Load`:
                                    load average, CPU steal, threads); None in files
                                    written before lstm-bench 0.2
    instructions                    CPU instructions of one forward+backward under callgrind
                                    (`lstm_bench.bench.instructions`, `bench --instructions`); None
                                    when not measured
    instructions_note               what was counted ("counted vectorised[...], C library built
                                    with -march=x86-64-v3"), or why nothing was ("not counted: ...")
    peak_gflops                     the matmul peak this point was checked against (GFLOP/s;
                                    `measure.impossible_reason`), which "% of peak" divides by;
                                    None where there was none (then the header's, if any)
    gpu                             CUDA points only (`lstm_bench.machine.gpu_timing.GpuFigures`): the
                                    cache mode that ran (cold/warm), CUDA-graph replays, the
                                    backward's phases, the empty-launch time, SM clock and temperature
    compile_s                       a compiling kernel's compile time: its cold first call less
                                    the warm forward+backward median (seconds); None for others
    worst_err_bound                 the verdict: the largest err/bound of the tolerance policy over
                                    every tensor of the first call's and the last timed call's
                                    results (`measure.measure_point`; <= 1 here, a larger one is a
                                    failed point); None when not judged (--no-accuracy, or
                                    `unjudged_reason`, or a file of lstm-bench < 0.2)
    unjudged_reason                 why a point measured with accuracy on has no verdict (no
                                    yardstick for its case: a low-precision case the vendor cannot
                                    run, or H < 8); None when judged or not asked
    oversubscribed                  why the machine was oversubscribed while the point was measured
                                    (`lstm_bench.machine.load.Load.oversubscribed_reason`), or None:
                                    its times read high and may be garbage
    """

    forward_s: tuple[float, ...]
    forward_backward_s: tuple[float, ...]
    saved_bytes: int | None = None
    peak_bytes: int | None = None
    max_rel_error: float | None = None
    backend: str = ""
    load: Load | None = None
    instructions: int | None = None
    peak_gflops: float | None = None
    instructions_note: str = ""
    gpu: GpuFigures | None = None
    compile_s: float | None = None
    worst_err_bound: float | None = None
    unjudged_reason: str | None = None
    oversubscribed: str | None = None
    timed: str = STEP

    def __post_init__(self) -> None:
        if self.timed not in TIMED:
            raise ValueError(f"measurement.timed must be one of {TIMED}, got {self.timed!r}")

    @property
    def forward_only(self) -> bool:
        """True when the timed call is a forward-only kernel's forward (`timed` "forward")."""
        return self.timed == FORWARD

    @property
    def forward_median_s(self) -> float | None:
        return statistics.median(self.forward_s) if self.forward_s else None

    @property
    def forward_backward_median_s(self) -> float:
        return statistics.median(self.forward_backward_s)

    @property
    def has_halves(self) -> bool:
        """False when the implementation was registered without forward/backward halves."""
        return bool(self.forward_s)

    def samples(self, metric: str) -> tuple[float, ...]:
        """The repeats of `metric`, "forward" or "forward_backward"."""
        if metric not in ("forward", "forward_backward"):
            raise ValueError(f"metric must be 'forward' or 'forward_backward', got {metric!r}")
        return self.forward_s if metric == "forward" else self.forward_backward_s

    def to_json(self) -> dict:
        d = {"forward_s": list(self.forward_s), "forward_backward_s": list(self.forward_backward_s),
             "saved_bytes": self.saved_bytes, "peak_bytes": self.peak_bytes,
             "max_rel_error": self.max_rel_error, "backend": self.backend}
        # Written only when present, so a record without them reads the same in lstm-bench 0.1
        # (which ignores fields it does not know) and here.
        if self.load is not None:
            d["load"] = self.load.to_json()
        if self.instructions is not None:
            d["instructions"] = self.instructions
        if self.instructions_note:
            d["instructions_note"] = self.instructions_note
        if self.peak_gflops is not None:
            d["peak_gflops"] = self.peak_gflops
        if self.gpu is not None:
            d["gpu"] = self.gpu.to_json()
        if self.compile_s is not None:
            d["compile_s"] = self.compile_s
        for name in ("worst_err_bound", "unjudged_reason", "oversubscribed"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.timed != STEP:
            d["timed"] = self.timed
        return d

    @classmethod
    def from_json(cls, d: object) -> "Measurement":
        """From a stored record; ValueError naming the field. Fields older files also held are ignored;
        fields newer ones add (load, instructions, peak_gflops, worst_err_bound, unjudged_reason,
        oversubscribed, timed) may be missing."""
        if not isinstance(d, dict):
            raise ValueError(f"measurement must be an object, got {d!r}")
        fb = _seconds("forward_backward_s", d.get("forward_backward_s"))
        if not fb:
            raise ValueError("measurement.forward_backward_s is empty")
        return cls(
            forward_s=_seconds("forward_s", d.get("forward_s", [])), forward_backward_s=fb,
            saved_bytes=_optional("saved_bytes", d.get("saved_bytes"), int),
            peak_bytes=_optional("peak_bytes", d.get("peak_bytes"), int),
            max_rel_error=_optional("max_rel_error", d.get("max_rel_error"), float),
            backend=str(d.get("backend") or ""),
            load=Load.from_json(d["load"]) if d.get("load") is not None else None,
            instructions=_optional("instructions", d.get("instructions"), int),
            peak_gflops=_optional("peak_gflops", d.get("peak_gflops"), float),
            instructions_note=str(d.get("instructions_note") or ""),
            gpu=GpuFigures.from_json(d["gpu"]) if d.get("gpu") is not None else None,
            compile_s=_optional("compile_s", d.get("compile_s"), float),
            worst_err_bound=_optional("worst_err_bound", d.get("worst_err_bound"), float),
            unjudged_reason=_optional("unjudged_reason", d.get("unjudged_reason"), str),
            oversubscribed=_optional("oversubscribed", d.get("oversubscribed"), str),
            timed=d.get("timed", STEP),
        )


@dataclass(frozen=True)
class PointRecord:
    """How one point of a sweep ended: ok with a measurement, failed with an error, or skipped with a reason.

    `worst_err_bound` of a failed record is the verdict that failed it (a wrong result:
    err/bound > 1, inf for NaN/Inf), None for other failures; an ok record's verdict is its
    measurement's (`err_bound`)."""

    point: Point
    status: str
    measurement: Measurement | None = None
    error: str = ""
    reason: str = ""
    time: str = ""
    worst_err_bound: float | None = None

    @property
    def err_bound(self) -> float | None:
        """The verdict's largest err/bound, whichever status; None when the point was not judged."""
        return self.measurement.worst_err_bound if self.measurement is not None else self.worst_err_bound

    @property
    def oversubscribed(self) -> str | None:
        """Why the machine was oversubscribed while this point was measured, or None (also when not measured)."""
        return self.measurement.oversubscribed if self.measurement is not None else None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "ok") != (self.measurement is not None):
            raise ValueError(f"a {self.status!r} record {'needs' if self.status == 'ok' else 'has no'} a measurement")

    @property
    def key(self) -> str:
        return self.point.key

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s of the median timed call (its GEMM FLOPs, `Point.gemm_flops`: forward+backward, or
        the forward of a forward-only kernel / seconds / 1e9); None unless ok."""
        if self.measurement is None:
            return None
        flops = self.point.gemm_flops(backward=not self.measurement.forward_only)
        return flops / self.measurement.forward_backward_median_s / 1e9

    def to_json(self) -> dict:
        rec: dict = {"kind": "point", "point": self.point.as_dict(), "status": self.status, "time": self.time}
        if self.measurement is not None:
            rec["measurement"] = self.measurement.to_json()
        if self.status == "failed":
            rec["error"] = self.error
            if self.worst_err_bound is not None:
                rec["worst_err_bound"] = self.worst_err_bound
        if self.status == "skipped":
            rec["reason"] = self.reason
        return rec

    @classmethod
    def from_json(cls, rec: dict) -> "PointRecord":
        """From one stored line; ValueError naming what is wrong."""
        if rec.get("kind") != "point":
            raise ValueError(f"expected a point record (kind 'point'), got kind {rec.get('kind')!r}")
        for name in ("point", "status"):
            if name not in rec:
                raise ValueError(f"point record is missing {name!r}")
        if not isinstance(rec["point"], dict):
            raise ValueError(f"'point' must be an object, got {rec['point']!r}")
        try:
            point = Point.from_dict(rec["point"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"'point' is not a valid grid point ({err})") from None
        if "key" in rec and rec["key"] != point.key:  # files of format 1 store the key too
            raise ValueError(f"'key' {rec['key']!r} does not match its point ({point.key!r})")
        measurement = None
        if rec["status"] == "ok":
            if "measurement" not in rec:
                raise ValueError("an 'ok' point record needs a 'measurement' object")
            measurement = Measurement.from_json(rec["measurement"])
        return cls(point, rec["status"], measurement, error=str(rec.get("error") or ""),
                   reason=str(rec.get("reason") or ""), time=str(rec.get("time") or ""),
                   worst_err_bound=_optional("worst_err_bound", rec.get("worst_err_bound"), float))
