"""What a sweep's CUDA points add, one row each (`gpu_rows`): eager against CUDA-graph time, the
sequential-launch floor, the backward's phases with their share of the peak, and the SM clock.

    launch share     1 - graph / eager: the part of an eager forward+backward that is per-launch
                     CPU overhead, which a CUDA graph removes (negative: the graph was slower)
    floor            sequential launches (2 T L D) x the measured empty-launch time
                     (`lstm_bench.machine.gpu_timing`): what a step-by-step LSTM cannot beat
    bwd-wt           measured alone where the kernel exposes it; for an autograd graph (autograd,
                     nn_lstm, nn_lstm_native), whose weight half cannot run alone, the median
                     backward minus the median backward-data (`gpu_timing.WEIGHTS_DERIVED`)
    phase % peak     the phase's GEMM FLOPs (`lstm_bench.bench.flops.phase_flops`) over its median
                     time, as a share of the point's matmul peak
    throttled        samples whose SM clock was below 75 % of the reference clock (nvbench's rule)

Numbers only; the command line and the GPU study format them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..machine.gpu_timing import WEIGHTS_DERIVED
from ..machine.peak import header_key
from .flops import phase_flops
from .records import PointRecord
from .results import ResultsFile


def _median(values) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class GpuRow:
    record: PointRecord
    cache: str
    eager_s: float
    graph_s: float | None
    graph_reason: str
    floor_s: float | None
    phases_s: dict[str, float | None]  # forward, backward, backward_data, backward_weights
    phase_pct: dict[str, float | None] = field(default_factory=dict)  # % of the matmul peak per phase
    pct_peak: float | None = None  # forward+backward
    sm_clock_mhz: tuple[int, int] | None = None  # (min, max)
    temperature_c: int | None = None  # max
    throttled: int = 0
    clock_reason: str = ""

    @property
    def launch_share(self) -> float | None:
        return None if self.graph_s is None else 1.0 - self.graph_s / self.eager_s

    @property
    def over_floor(self) -> float | None:
        return None if not self.floor_s else self.eager_s / self.floor_s


def gpu_row(rec: PointRecord, peak_gflops: float | None) -> GpuRow | None:
    """The row of one ok CUDA record, or None for any other."""
    m = rec.measurement
    if m is None or m.gpu is None:
        return None
    p, g = rec.point, m.gpu
    eager = m.forward_backward_median_s
    phases = {"forward": m.forward_median_s, "backward": _median(g.backward_s),
              "backward_data": _median(g.backward_data_s), "backward_weights": _median(g.backward_weights_s)}
    derived = g.phases_reason == WEIGHTS_DERIVED and phases["backward"] and phases["backward_data"]
    if derived and phases["backward"] > phases["backward_data"]:
        phases["backward_weights"] = phases["backward"] - phases["backward_data"]
    steps = None if not p.lengths else int(p.sequence_lengths().sum())
    flops = phase_flops(p.T, p.B, p.I, p.H, num_layers=p.num_layers, bidirectional=p.bidirectional,
                        proj_size=p.proj_size, steps=steps)
    pct = {k: (100 * flops[k] / s / 1e9 / peak_gflops if s and peak_gflops else None) for k, s in phases.items()}
    clocks = g.clock.get("sm_clock_mhz") or []
    temps = g.clock.get("temperature_c") or []
    return GpuRow(rec, g.cache, eager, _median(g.graph_s), g.graph_reason,
                  g.launch_floor_s(p.T, p.num_layers, p.bidirectional), phases, pct,
                  100 * rec.gflops / peak_gflops if peak_gflops else None,
                  (min(clocks), max(clocks)) if clocks else None, max(temps) if temps else None,
                  int(g.clock.get("throttled") or 0), str(g.clock.get("reason") or ""))


def gpu_rows(results: ResultsFile) -> list[GpuRow]:
    """A row per ok CUDA point of `results` (latest record per point)."""
    peaks = results.env.get("matmul_peak_gflops") or {}
    rows = []
    for rec in results.by_key().values():
        m = rec.measurement
        peak = (m.peak_gflops if m is not None else None) or peaks.get(header_key(rec.point.device, rec.point.dtype))
        row = gpu_row(rec, peak)
        if row is not None:
            rows.append(row)
    return rows


def gpu_notes(rows: list[GpuRow]) -> list[str]:
    """What the empty cells of the rows mean: graph capture failures, missing phases and clocks."""
    notes: dict[str, None] = {}
    for r in rows:
        if r.graph_s is None and r.graph_reason:
            notes[f"graph '-' for {r.record.point.impl}: {r.graph_reason}"] = None
        m = r.record.measurement
        if m is not None and m.gpu is not None and m.gpu.phases_reason == WEIGHTS_DERIVED:
            notes[f"bwd-wt of {r.record.point.impl}: {WEIGHTS_DERIVED}"] = None
        elif m is not None and m.gpu is not None and m.gpu.phases_reason:
            notes[f"bwd-data, bwd-wt '-': {m.gpu.phases_reason}"] = None
        if r.sm_clock_mhz is None and r.clock_reason:
            notes[f"SM clock '-': {r.clock_reason}"] = None
        if r.throttled:
            notes[f"THROTTLED: {r.record.key}: {r.throttled} sample(s) below 75 % of the reference SM clock"] = None
    return list(notes)
