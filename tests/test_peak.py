"""The matmul peak: best of the libraries, capability-checked dtypes, a fresh cache key, impossible timings."""
from __future__ import annotations

import json

import pytest
import torch

from lstm_bench.bench.grid import Point
from lstm_bench.bench.measure import impossible_reason
from lstm_bench.bench.records import Measurement
from lstm_bench.machine import peak
from lstm_bench.machine.peak import Peak, matmul_peak, measure_peak, no_peak_reason, peak_key


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_peak_is_the_best_library_and_names_them_all():
    p = measure_peak("cpu", "float32", budget=1.0)
    assert p.gflops == max(p.libraries.values()) and p.library in p.libraries
    assert "mkl" in p.libraries
    if torch.backends.mkldnn.is_available():
        assert "onednn" in p.libraries  # float32 GEMM through oneDNN as well as MKL


@pytest.mark.parametrize("flags, dtype, emulated", [
    ({}, "float16", True), ({"avx512_fp16": True}, "float16", False), ({"avx_ne_convert": True}, "float16", False),
    ({}, "bfloat16", True), ({"avx512_bf16": True}, "bfloat16", False), ({}, "float32", False),
])
def test_reduced_precision_needs_the_instructions(monkeypatch, flags, dtype, emulated):
    monkeypatch.setattr(peak, "cpu_features", lambda: flags)
    reason = no_peak_reason("cpu", dtype)
    assert (reason is not None) == emulated
    if emulated:
        assert "emulated" in reason
        assert measure_peak("cpu", dtype).gflops is None  # decided, not timed: no GEMM ran


def test_dtypes_without_a_matmul_have_no_peak():
    assert "no plain matmul for float8_e4m3fn" in no_peak_reason("cpu", "float8_e4m3fn")
    assert "no plain matmul" in no_peak_reason("cuda", "float8_e5m2")


def test_old_cached_peaks_are_not_reused_and_a_loaded_measurement_is_not_cached(tmp_path, monkeypatch):
    from lstm_bench.machine import load

    monkeypatch.setattr(load, "cpu_times", lambda: None)
    monkeypatch.setattr(load, "cpu_pressure_us", lambda: None)  # no PSI: the load average decides
    monkeypatch.setattr(load, "load_average", lambda: 9.0)  # busy: measured, used, not cached
    monkeypatch.setattr(peak, "measure_peak", lambda d, t, shapes=(): Peak(d, t, 250.0, "onednn"))
    assert matmul_peak("cpu", "float32", threads=1).gflops == 250.0
    assert not (tmp_path / "cache" / "matmul_peak.json").exists()
    monkeypatch.setattr(load, "load_average", lambda: 0.1)  # quiet from here on
    key = peak_key("cpu", "float32", 1)
    assert key.startswith("v2-")
    cache = tmp_path / "cache" / "matmul_peak.json"
    cache.parent.mkdir(parents=True)
    old_key = key.replace("v2-", "")  # 0.1's key had no version; its MKL-only figure must not come back
    cache.write_text(json.dumps({old_key: {"gflops": 99.0}}))
    calls = []
    monkeypatch.setattr(peak, "measure_peak", lambda d, t, shapes=(): calls.append(1) or Peak(d, t, 300.0, "onednn"))
    assert matmul_peak("cpu", "float32", threads=1).gflops == 300.0 and calls == [1]
    assert matmul_peak("cpu", "float32", threads=1).gflops == 300.0 and calls == [1]  # cached now
    # refresh keeps the better figure: a re-measurement under load does not lower the peak
    monkeypatch.setattr(peak, "measure_peak", lambda d, t, shapes=(): Peak(d, t, 150.0, "mkl"))
    assert matmul_peak("cpu", "float32", threads=1, refresh=True).gflops == 300.0


def test_a_timing_faster_than_the_peak_is_impossible():
    p = Point("vectorised", 10, 32, 64, 64)  # 24 T B H (I + H) = 62.9 MFLOP a step
    m = Measurement((), (1e-4, 1e-4, 1e-4))  # 629 GFLOP/s
    assert impossible_reason(p, m, 700.0) is None and impossible_reason(p, m, None) is None
    msg = impossible_reason(p, m, 300.0)
    assert "impossible timing: 629.1 GFLOP/s" in msg and "peak of 300.0 GFLOP/s" in msg


def test_a_sweep_records_an_impossible_point_as_failed(tmp_path, monkeypatch):
    """A peak far below what the point reaches, even after measuring it again: failed, with both figures."""
    from lstm_bench.bench.grid import Grid
    from lstm_bench.bench.sweep import SweepSettings, run_sweep

    monkeypatch.setattr(peak, "measure_peak", lambda d, t, shapes=(): Peak(d, t, 1e-6, "mkl"))
    out = run_sweep(Grid(impls=("vectorised",), T=(2,), H=(4,), B=(1,), devices=("cpu",)), tmp_path / "r.jsonl",
                    settings=SweepSettings(repeats=2, accuracy=False, memory=False), threads=1)
    rec = out.results.records[0]
    assert rec.status == "failed" and "impossible timing" in rec.error and "peak of 0.0 GFLOP/s" in rec.error
    assert out.failed
