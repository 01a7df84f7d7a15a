"""Bencher Metric Format (BMF) JSON of one machine's sweep (`lstm-bench export --format bencher`).

BMF (https://bencher.dev/docs/reference/bencher-metric-format/, JSON schema
https://bencher.dev/bmf.json, draft-07) is

    {benchmark_name: {measure_slug: {"value": v, "lower_value": lo, "upper_value": hi}}}

with `value` required. One benchmark per point (`metrics.benchmark_name`); its measures:

    latency          ns   median forward+backward, lower/upper = its quartiles (Bencher's built-in
                          latency measure is in nanoseconds)
    forward-latency  ns   the same for the forward half
    gflops           GFLOP/s   peak-bytes, saved-bytes   B   max-rel-error   1

Bencher creates a measure named by a slug it does not know on first upload. One BMF
upload is one testbed, so the file is one machine's: `one_machine` refuses several
fingerprints, and the testbed to pass is `lstm-bench export --machine --format hash`.
"""
from __future__ import annotations

from ..bench.results import ResultsFile
from .fleet import one_machine
from .metrics import benchmark_name, figures

# figure -> (measure slug, factor from the figure's unit)
MEASURES = {"forward_backward_s": ("latency", 1e9), "forward_s": ("forward-latency", 1e9), "gflops": ("gflops", 1.0),
            "peak_bytes": ("peak-bytes", 1.0), "saved_bytes": ("saved-bytes", 1.0),
            "max_rel_error": ("max-rel-error", 1.0)}


def to_bmf(results: list[ResultsFile]) -> dict:
    """BMF of every ok point of `results` (one machine); ValueError for several machines or a point twice."""
    one_machine(results, "a Bencher upload (one testbed)")
    out: dict[str, dict] = {}
    where: dict[str, str] = {}
    for res in results:
        for rec in res.ok():
            name = benchmark_name(rec.point)
            if name in out:
                raise ValueError(f"point {rec.key} is in {where[name]} and {res.path}: export one run at a time "
                                 f"(Bencher keeps one value per benchmark and upload)")
            where[name] = str(res.path)
            metrics = {}
            for fig in figures(rec):
                slug, factor = MEASURES[fig.name]
                lo, mid, hi = fig.quartiles
                metrics[slug] = ({"value": mid * factor} if len(fig.values) == 1 else
                                 {"value": mid * factor, "lower_value": lo * factor, "upper_value": hi * factor})
            out[name] = metrics
    if not out:
        raise ValueError("no successfully measured point to export")
    return out
