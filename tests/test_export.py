"""`lstm-bench export`: each format checked against its published schema, transcribed here.

- Bencher Metric Format: the JSON schema at https://bencher.dev/bmf.json (draft-07, as shown on
  https://bencher.dev/docs/reference/bencher-metric-format/): an object whose non-empty keys map
  to objects whose non-empty keys map to {"value": number (required), "lower_value": number,
  "upper_value": number}; benchmark names up to 1024 characters, measure slugs up to 64.
- PyTorch oss_ci_benchmark_v3: the columns of pytorch/test-infra
  clickhouse_db_schema/oss_ci_benchmark_v3/schema.sql (commit 3c0eb5c) a benchmark writes
  (the uploader adds timestamp, repo, head_branch, head_sha, workflow_id, run_attempt, job_id).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from clirun import run

from lstm_bench.bench.results import load, make_header
from lstm_bench.report.bencher import to_bmf
from lstm_bench.report.pytorch_v3 import to_v3

ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "cpu_count": 8, "gpu": None, "commit": "abc123",
       "lstm_bench": "0.3.0"}
GRID = {"impls": ["vectorised"], "T": [10, 100], "H": [64], "B": [1], "devices": ["cpu"], "dtypes": ["float32"],
        "I": None}
TIMES = {10: [1.0e-3, 1.1e-3, 0.9e-3, 1.0e-3, 1.2e-3], 100: [1e-2, 1.1e-2, 0.9e-2, 1e-2, 1.05e-2]}


def record(T: int, status: str = "ok") -> dict:
    rec = {"kind": "point", "point": {"impl": "vectorised", "T": T, "B": 1, "I": 64, "H": 64, "device": "cpu",
                                      "dtype": "float32"}, "status": status}
    if status == "ok":
        rec["measurement"] = {"forward_s": [t / 3 for t in TIMES[T]], "forward_backward_s": TIMES[T],
                              "saved_bytes": 1000 * T, "peak_bytes": 3000 * T, "max_rel_error": 1e-7,
                              "backend": "vectorised[test]"}
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def write(path: Path, *, env: dict = ENV, records=None) -> Path:
    lines = [make_header(env, GRID, {"repeats": 5})] + (records if records is not None else [record(10), record(100)])
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


# --- Bencher Metric Format -------------------------------------------------------------------------------------


def check_bmf(doc: object) -> None:
    """The BMF JSON schema (module docstring), as a check that names the first violation."""
    assert isinstance(doc, dict) and doc, "BMF: a non-empty object of benchmarks"
    for bench, measures in doc.items():
        assert isinstance(bench, str) and 0 < len(bench) <= 1024, f"benchmark name {bench!r}"
        assert isinstance(measures, dict) and measures, f"{bench}: an object of measures"
        for slug, metric in measures.items():
            assert isinstance(slug, str) and 0 < len(slug) <= 64, f"measure slug {slug!r}"
            assert isinstance(metric, dict) and "value" in metric, f"{bench}/{slug}: 'value' is required"
            for key in ("value", "lower_value", "upper_value"):
                if key in metric:
                    v = metric[key]
                    assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), \
                        f"{bench}/{slug}.{key} = {v!r} is not a number"


def test_the_bmf_check_accepts_bencher_s_own_example_and_rejects_a_missing_value():
    example = {"benchmark_name": {"latency": {"value": 88.0, "lower_value": 87.42, "upper_value": 88.88},
                                  "throughput": {"value": 5.55, "lower_value": 3.14, "upper_value": 6.30}},
               "/bin/sh -c ./my_build_script.sh": {"build-time": {"value": 87.0}},
               "my_binary": {"file-size": {"value": 42.0}}}
    check_bmf(example)
    with pytest.raises(AssertionError, match="'value' is required"):
        check_bmf({"b": {"latency": {"lower_value": 1.0}}})
    with pytest.raises(AssertionError, match="not a number"):
        check_bmf({"b": {"latency": {"value": "1"}}})


def test_bencher_export_follows_bmf_with_latency_in_nanoseconds(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl")
    code, out, err = run(capsys, "export", path, "--format", "bencher")
    assert code == 0, err
    doc = json.loads(out)
    check_bmf(doc)
    name = "lstm/vectorised/T=10/B=1/I=64/H=64/cpu/float32"
    assert set(doc) == {name, name.replace("T=10", "T=100")}
    lat = doc[name]["latency"]
    # median of TIMES[10] is 1.0e-3 s = 1e6 ns; quartiles 1.0e-3 and 1.1e-3 s (numpy's linear percentile)
    assert lat["value"] == pytest.approx(1.0e6) and lat["lower_value"] == pytest.approx(1.0e6)
    assert lat["upper_value"] == pytest.approx(1.1e6)
    assert doc[name]["peak-bytes"] == {"value": 30000.0}
    # GFLOP/s = 24 T B H (I + H) / median seconds / 1e9
    assert doc[name]["gflops"]["value"] == pytest.approx(24 * 10 * 1 * 64 * 128 / 1.0e-3 / 1e9)


def test_bencher_export_refuses_two_machines(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl")
    write(tmp_path / "b.jsonl", env={**ENV, "threads": 1})
    code, out, err = run(capsys, "export", tmp_path, "--format", "bencher")
    assert code == 2 and out == ""
    assert "one machine at a time, got 2" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="export one run at a time"):
        to_bmf([load(a), load(a)])


# --- PyTorch oss_ci_benchmark_v3 -------------------------------------------------------------------------------

STRING, UINT, FLOAT, STRMAP = "String", "UInt", "Float", "Map(String, String)"
V3 = {  # schema.sql, the columns a benchmark writes
    "benchmark": {"name": STRING, "mode": STRING, "dtype": STRING, "extra_info": STRMAP},
    "model": {"name": STRING, "type": STRING, "backend": STRING, "origins": [STRING], "extra_info": STRMAP},
    "inputs": ("map", {"dtype": STRING, "extra_info": STRMAP}),
    "dependencies": ("map", {"repo": STRING, "branch": STRING, "sha": STRING, "version": STRING,
                             "extra_info": STRMAP}),
    "metric": {"name": STRING, "benchmark_values": [FLOAT], "target_value": FLOAT, "extra_info": STRMAP},
    "runners": [{"name": STRING, "type": STRING, "cpu_info": STRING, "cpu_count": UINT, "mem_info": STRING,
                 "avail_mem_in_gb": UINT, "gpu_info": STRING, "gpu_count": UINT, "gpu_mem_info": STRING,
                 "avail_gpu_mem_in_gb": UINT, "extra_info": STRMAP}],
}


def check_type(where: str, value: object, kind: object) -> None:
    if kind == STRING:
        assert isinstance(value, str), f"{where}: String, got {value!r}"
    elif kind == UINT:
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"{where}: UInt, got {value!r}"
    elif kind == FLOAT:
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), \
            f"{where}: Float32, got {value!r}"
    elif kind == STRMAP:
        assert isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), \
            f"{where}: Map(String, String), got {value!r}"
    elif isinstance(kind, list):
        assert isinstance(value, list), f"{where}: Array, got {value!r}"
        for i, item in enumerate(value):
            check_type(f"{where}[{i}]", item, kind[0])
    elif isinstance(kind, tuple):  # ("map", tuple type)
        assert isinstance(value, dict), f"{where}: Map, got {value!r}"
        for k, item in value.items():
            check_type(f"{where}[{k!r}]", item, kind[1])
    else:  # a Tuple: every field, nothing else
        assert isinstance(value, dict) and set(value) == set(kind), \
            f"{where}: fields {sorted(value) if isinstance(value, dict) else value!r}, schema has {sorted(kind)}"
        for k, sub in kind.items():
            check_type(f"{where}.{k}", value[k], sub)


def check_v3(record: dict) -> None:
    assert set(V3) <= set(record), f"missing {sorted(set(V3) - set(record))}"
    for column, kind in V3.items():
        check_type(column, record[column], kind)
    assert record.get("schema_version", "v3") == "v3"


def test_the_v3_check_rejects_a_non_string_map_value_and_a_missing_field(tmp_path):
    good = to_v3([load(write(tmp_path / "r.jsonl"))])[0]
    check_v3(good)
    bad = json.loads(json.dumps(good))
    bad["benchmark"]["extra_info"]["threads"] = 2  # ClickHouse's Map(String, String) takes strings only
    with pytest.raises(AssertionError, match="benchmark.extra_info: Map"):
        check_v3(bad)
    bad = json.loads(json.dumps(good))
    del bad["metric"]["target_value"]
    with pytest.raises(AssertionError, match="metric: fields"):
        check_v3(bad)


def test_pytorch_v3_export_follows_the_schema_one_record_per_metric(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl", records=[record(10), record(100, "failed")])
    code, out, err = run(capsys, "export", path, "--format", "pytorch-v3", "--repo", "lstm-bench/lstm-bench")
    assert code == 0, err
    records = json.loads(out)
    for rec in records:
        check_v3(rec)
    # one ok point: fwd+bwd, forward, gflops, peak, saved, max_rel_error; the failed point has none
    assert sorted(r["metric"]["name"] for r in records) == sorted(
        ["forward_backward_time_ms", "forward_time_ms", "gflops", "peak_memory_bytes", "saved_memory_bytes",
         "max_rel_error"])
    fb = next(r for r in records if r["metric"]["name"] == "forward_backward_time_ms")
    assert fb["metric"]["benchmark_values"] == pytest.approx([t * 1e3 for t in TIMES[10]])
    assert fb["model"]["name"] == "lstm-T10-B1-I64-H64" and fb["model"]["backend"] == "vectorised"
    assert fb["benchmark"]["dtype"] == "float32" and fb["benchmark"]["mode"] == "training"
    assert fb["dependencies"]["lstm-bench"]["sha"] == "abc123"
    runner = fb["runners"][0]
    assert runner["cpu_info"] == "Test CPU" and runner["cpu_count"] == 8 and runner["gpu_count"] == 0
    assert runner["extra_info"]["fingerprint"] == load(path).fingerprint["hash"]


# --- CSV and the command --------------------------------------------------------------------------------------


def test_csv_has_every_status_and_names_the_machine(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl", records=[record(10), record(100, "failed")])
    code, out, err = run(capsys, "export", path, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert float(rows[0]["forward_backward_median_s"]) == pytest.approx(1.0e-3)
    assert rows[1]["error_or_reason"] == "RuntimeError: boom" and rows[1]["forward_backward_median_s"] == ""
    assert {r["fingerprint"] for r in rows} == {load(path).fingerprint["hash"]}


def test_export_writes_a_new_file_only_and_validates_its_flags(tmp_path, capsys):
    path = write(tmp_path / "r.jsonl")
    out = tmp_path / "bmf.json"
    assert run(capsys, "export", path, "--format", "bencher", "--out", out)[0] == 0
    first = out.read_bytes()
    code, _, err = run(capsys, "export", path, "--format", "csv", "--out", out)
    assert code == 2 and "already exists" in err and out.read_bytes() == first
    code, _, err = run(capsys, "export", path, "--format", "xml")
    assert code == 2 and "--format must be one of bencher, pytorch-v3, csv" in err
    code, _, err = run(capsys, "export", "--format", "bencher")
    assert code == 2 and "RESULTS is required" in err


def test_export_machine_prints_the_fingerprint_hash_and_asv_flags(capsys):
    code, out, _ = run(capsys, "export", "--machine", "--format", "hash", "--threads", "1")
    assert code == 0 and len(out.strip()) == 12 and int(out, 16) >= 0
    code, flags, _ = run(capsys, "export", "--machine", "--format", "asv-machine", "--threads", "1", "--name", "ci")
    assert code == 0 and f"--machine ci-{out.strip()}" in flags and "--num_cpu" in flags
    code, other, _ = run(capsys, "export", "--machine", "--format", "hash", "--threads", "2")
    assert other != out  # another thread count is another machine configuration


def test_asv_takes_the_machine_flags_and_names_the_machine_by_its_fingerprint(tmp_path, capsys):
    import os
    import shlex
    import subprocess
    import sys

    code, flags, _ = run(capsys, "export", "--machine", "--format", "asv-machine", "--threads", "2", "--name", "cpu")
    assert code == 0
    done = subprocess.run([sys.executable, "-m", "asv", "machine", "--yes", *shlex.split(flags)], capture_output=True,
                          text=True, env={**os.environ, "HOME": str(tmp_path)},
                          cwd=Path(__file__).resolve().parent.parent)  # asv wants the project's asv.conf.json
    assert done.returncode == 0, done.stdout + done.stderr
    machines = json.loads((tmp_path / ".asv-machine.json").read_text())
    code, fp_hash, _ = run(capsys, "export", "--machine", "--format", "hash", "--threads", "2")
    entry = machines[f"cpu-{fp_hash.strip()}"]
    assert entry["cpu"].endswith(f"[fp {fp_hash.strip()}]") and entry["machine"] == f"cpu-{fp_hash.strip()}"
