"""PyTorch's benchmark database records, schema oss_ci_benchmark_v3 (`lstm-bench export --format pytorch-v3`).

Followed: pytorch/test-infra `clickhouse_db_schema/oss_ci_benchmark_v3/schema.sql` (schema_version
"v3", read at commit 3c0eb5c). A record per point and metric; the fields a benchmark writes are

    benchmark     {name, mode, dtype, extra_info: Map(String, String)}
    model         {name, type, backend, origins: [String], extra_info}
    inputs        Map(String, {dtype, extra_info})
    dependencies  Map(String, {repo, branch, sha, version, extra_info})
    metric        {name, benchmark_values: [Float32], target_value: Float32, extra_info}
    runners       [{name, type, cpu_info, cpu_count: UInt32, mem_info, avail_mem_in_gb: UInt32, gpu_info,
                    gpu_count: UInt32, gpu_mem_info, avail_gpu_mem_in_gb: UInt32, extra_info}]

and the uploader (test-infra's upload-benchmark-results action) adds timestamp, repo,
head_branch, head_sha, workflow_id, run_attempt and job_id. Every Map holds strings
only; target_value is not Nullable, so a metric without a target stores 0.

Mapping: benchmark.name "lstm-bench", mode "training" (forward+backward), model.name the
shape (`lstm-T100-B32-I256-H256`, plus the configuration), model.backend the
implementation under test, the repeats in benchmark_values (ms for times), and the
hardware fingerprint in runners[0] (its hash in extra_info["fingerprint"]).
"""
from __future__ import annotations

from ..bench.grid import PLAIN, Point
from ..bench.records import PointRecord
from ..bench.results import ResultsFile
from ..machine.fingerprint import UNKNOWN
from .metrics import figures

SCHEMA_VERSION = "v3"
# figure -> (metric name, factor from the figure's unit)
METRICS = {"forward_backward_s": ("forward_backward_time_ms", 1e3), "forward_s": ("forward_time_ms", 1e3),
           "gflops": ("gflops", 1.0), "peak_bytes": ("peak_memory_bytes", 1.0),
           "saved_bytes": ("saved_memory_bytes", 1.0), "max_rel_error": ("max_rel_error", 1.0)}


def _strings(d: dict) -> dict[str, str]:
    """A ClickHouse Map(String, String): every value a string, missing ones empty."""
    return {str(k): "" if v is None else (" ".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in d.items()}


def _uint(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def runner(results: ResultsFile) -> dict:
    """runners[0] of every record of `results`: the machine of its fingerprint."""
    fp = results.fingerprint
    m, sw = fp["machine"], fp["software"]
    gpu = m.get("gpu") or {}
    gpu_mem = gpu.get("memory_bytes")
    return {"name": f"lstm-bench-{fp['hash']}", "type": str(gpu.get("name") or m.get("cpu") or UNKNOWN),
            "cpu_info": str(m.get("cpu", UNKNOWN)), "cpu_count": _uint(m.get("cpus")),
            "mem_info": f"{m.get('memory_gib', UNKNOWN)} GiB", "avail_mem_in_gb": _uint(m.get("memory_gib")),
            "gpu_info": str(gpu.get("name") or ""), "gpu_count": 1 if gpu else 0,
            "gpu_mem_info": f"{gpu_mem} B" if isinstance(gpu_mem, int) else "",
            "avail_gpu_mem_in_gb": gpu_mem // 2 ** 30 if isinstance(gpu_mem, int) else 0,
            "extra_info": _strings({"fingerprint": fp["hash"], "threads": m.get("threads"),
                                    "cpu_flags": m.get("cpu_flags"), "blas": sw.get("blas"),
                                    "cpu_capability": sw.get("cpu_capability"), "driver": sw.get("driver"),
                                    "cuda": sw.get("cuda"), "cudnn": sw.get("cudnn"),
                                    "sm_count": gpu.get("sm_count"), "l2_bytes": gpu.get("l2_bytes"),
                                    "power_limit_w": gpu.get("power_limit_w")})}


def model_name(point: Point) -> str:
    name = f"lstm-T{point.T}-B{point.B}-I{point.I}-H{point.H}"
    return name if point.variant == PLAIN else f"{name}-{point.variant.label}"


def records_of(results: ResultsFile, rec: PointRecord, run: dict, repo: str) -> list[dict]:
    """The v3 records of one ok point: one per figure."""
    p, env = rec.point, results.env
    common = {
        "benchmark": {"name": "lstm-bench", "mode": "training", "dtype": p.dtype,
                      "extra_info": _strings({"device": p.device, "threads": env.get("threads"),
                                              "settings": ",".join(f"{k}={v}" for k, v in results.settings.items())})},
        "model": {"name": model_name(p), "type": "lstm-bptt", "backend": p.impl, "origins": ["lstm-bench"],
                  "extra_info": _strings({"T": p.T, "B": p.B, "I": p.I, "H": p.H, "config": p.variant.label,
                                          "ran": rec.measurement.backend, "key": p.key})},
        "inputs": {"x": {"dtype": p.dtype, "extra_info": _strings({"shape": f"{p.T},{p.B},{p.I}"})}},
        "dependencies": {
            "torch": {"repo": "pytorch/pytorch", "branch": "", "sha": "", "version": str(env.get("torch", "")),
                      "extra_info": {}},
            "lstm-bench": {"repo": repo, "branch": "", "sha": str(env.get("commit") or ""),
                           "version": str(env.get("lstm_bench") or ""), "extra_info": {}}},
        "runners": [run],
        "schema_version": SCHEMA_VERSION,
    }
    out = []
    for fig in figures(rec):
        name, factor = METRICS[fig.name]
        out.append({**common, "metric": {"name": name, "benchmark_values": [v * factor for v in fig.values],
                                         "target_value": 0.0,
                                         "extra_info": _strings({"unit": fig.unit if factor == 1.0 else "ms",
                                                                 "values": "repeats" if len(fig.values) > 1
                                                                 else "one"})}})
    return out


def to_v3(results: list[ResultsFile], *, repo: str = "") -> list[dict]:
    """Every ok point of every file as v3 records (each file's runner its own machine)."""
    out: list[dict] = []
    for res in results:
        run = runner(res)
        for rec in res.ok():
            out += records_of(res, rec, run, repo)
    if not out:
        raise ValueError("no successfully measured point to export")
    return out
