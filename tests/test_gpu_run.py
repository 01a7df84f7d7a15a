"""The GPU run's plumbing (studies/gpu_run.py, studies/gpu_summary.py) on a machine without a GPU: its
machine and anchor steps against a faked GPU, the summary from the files they leave, a step past its
time limit interrupted, and a bad --only."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from lstm_bench.bench.records import Measurement
from lstm_bench.machine import gpu, gpu_timing, peak
from lstm_bench.machine.gpu_timing import GpuFigures
from lstm_bench.machine.peak import Peak

# studies/ is not installed with the package: importable from the checkout under `python -m pytest`
# (the working directory is on sys.path) but not under the bare `pytest` script, hence the root here
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from studies import gpu_run  # noqa: E402
from studies.gpu_summary import junit_summary, write_summary  # noqa: E402

IDENT = {"name": "NVIDIA H200", "sm_count": 132, "l2_bytes": 52428800, "capability": "9.0", "driver": "580.65.06",
         "cuda": "13.0", "cudnn": 91000, "power_limit_w": 700.0, "max_sm_clock_mhz": 1980, "tf32": {}}
PEAKS = {"float32": 50_000.0, "tf32": 400_000.0, "bfloat16": 800_000.0, "float16": 800_000.0}  # GFLOP/s, chosen

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
skipped="1" tests="3"><testcase classname="tests.test_cudnn" name="test_manual[vectorised-float32]">
<failure message="AssertionError: dx 3.1 x the bound&#10;second line">trace</failure></testcase>
<testcase classname="tests.test_timing" name="test_time_fn_on_cuda_counts_kernel_time"/>
<testcase classname="tests.test_gpu" name="test_x"><skipped message="s"/></testcase></testsuite></testsuites>"""


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(gpu, "gpu_identity", lambda device=None: IDENT)
    monkeypatch.setattr(gpu, "nvml_unavailable_reason", lambda: None)
    monkeypatch.setattr(gpu_timing, "launch_seconds", lambda device: 5e-6)
    monkeypatch.setattr(peak, "gpu_peaks", lambda device, shapes=(): {
        k: Peak("cuda", "float32", v, "cublas", (6400, 512, 2048)) for k, v in PEAKS.items()})


def _measurement(point, **_):
    ms = {"nn_lstm": 4.0, "vectorised": 10.0}[point.impl]  # forward+backward, chosen
    fig = GpuFigures("cold", 52428800, graph_s=(ms / 2e3,), backward_s=(ms * 2 / 3e3,), launch_s=5e-6,
                     backward_data_s=(ms / 3e3,) if point.impl == "nn_lstm" else ())
    return Measurement((ms / 3e3,), (ms / 1e3,), saved_bytes=10, peak_bytes=20, max_rel_error=1e-6,
                       backend="cudnn" if point.impl == "nn_lstm" else "vectorised[cublas]", gpu=fig)


def test_the_steps_and_the_summary_on_a_faked_gpu(tmp_path, monkeypatch, fake_gpu):
    from lstm_bench.bench import measure

    with monkeypatch.context() as cpu:  # the sweep itself runs on this CPU, before measure_point is faked
        cpu.setattr(torch.cuda, "is_available", lambda: False)
        _sweep(tmp_path / "bench-cuda.jsonl")
    monkeypatch.setattr(measure, "measure_point", _measurement)
    assert gpu_run.step_machine(tmp_path) == 0 and gpu_run.step_anchor(tmp_path) == 0
    machine = json.loads((tmp_path / "machine.json").read_text())
    assert machine["gpu"]["name"] == "NVIDIA H200" and machine["peaks"]["tf32"]["gflops"] == 400_000.0
    anchor = json.loads((tmp_path / "anchor.json").read_text())
    assert anchor["gflop"] == pytest.approx(80.5306368)
    assert anchor["datasheet_floor_ms"]["float32"] == pytest.approx(80.5306368 / 67)  # 1.2 ms, the figure
    assert [(r["mode"], r["impl"]) for r in anchor["rows"]] == [
        (m, i) for m in ("float32", "tf32", "bfloat16") for i in ("nn_lstm", "vectorised")]
    (tmp_path / "pytest-junit.xml").write_text(JUNIT)
    outcomes = [{"step": "pytest", "rc": 1, "seconds": 3.0, "timed_out": False, "skipped": ""},
                {"step": "bench", "rc": 130, "seconds": 9.0, "timed_out": True, "skipped": ""}]
    text = write_summary(tmp_path, outcomes, 12.0).read_text()
    assert "GPU NVIDIA H200 (132 SMs" in text and "driver 580.65.06" in text
    assert "tests 3, failures 1, errors 0, skipped 1" in text
    assert "- FAILURE tests.test_cudnn::test_manual[vectorised-float32]: AssertionError: dx 3.1 x the bound" in text
    # measured floor: 80.53 GFLOP / 50 000 GFLOP/s = 1.611 ms; cuDNN's 4 ms is 2.5x it
    assert "| float32 | nn_lstm | cudnn | 1.333 | 2.667 | 1.333 | 4.000 | 2.000 | 1.611 | 2.5 | 8.4x, 5.4x |" in text
    # bfloat16: 80.53 / 800 000 = 0.101 ms, and a 0.05 ms timing would be impossible; vectorised is 99x the floor
    assert "| bfloat16 | vectorised | vectorised[cublas] | 3.333 | 6.667 | - | 10.000 | 5.000 | 0.101 | 99.3 |" in text
    assert "TIMED OUT" in text and "- bench: timed out" in text
    assert "vectorised" in text.split("## bench")[1] and "no CUDA point measured" in text


def _sweep(path: Path) -> None:
    """A real (CPU) results file where the bench step leaves bench-cuda.jsonl."""
    from lstm_bench.bench.grid import Grid
    from lstm_bench.bench.sweep import SweepSettings, run_sweep

    run_sweep(Grid(impls=("vectorised",), T=(2,), H=(4,), B=(1,), devices=("cpu",)), path,
              settings=SweepSettings(repeats=1, accuracy=False, memory=False), threads=1, peak=False)


def test_an_impossible_anchor_timing_is_flagged(tmp_path, monkeypatch, fake_gpu):
    from lstm_bench.bench import measure

    monkeypatch.setattr(measure, "measure_point", lambda point, **kw: Measurement(
        (1e-5,), (3e-5,), gpu=GpuFigures("cold", 1, backward_s=(2e-5,))))
    gpu_run.step_machine(tmp_path)
    gpu_run.step_anchor(tmp_path)
    text = write_summary(tmp_path, [], 1.0).read_text()
    # 0.03 ms against a measured floor of 1.611 ms (float32) is faster than the GEMMs allow
    assert "| float32 | nn_lstm |  | 0.010 | 0.020 | - | 0.030 | - () | 1.611 | 0.0 IMPOSSIBLE |" in text


def test_a_failed_anchor_point_is_recorded_and_the_others_run(tmp_path, monkeypatch, fake_gpu):
    from lstm_bench.bench import measure

    def flaky(point, **kw):
        if point.dtype == "bfloat16" and point.impl == "vectorised":
            raise RuntimeError("CUDA error: an illegal memory access")
        return _measurement(point)
    monkeypatch.setattr(measure, "measure_point", flaky)
    assert gpu_run.step_anchor(tmp_path) == 1
    rows = json.loads((tmp_path / "anchor.json").read_text())["rows"]
    assert [r["status"] for r in rows].count("failed") == 1 and len(rows) == 6
    assert "FAILED: RuntimeError: CUDA error" in write_summary(tmp_path, [], 1.0).read_text()


def test_a_skipped_step_is_named_as_skipped_not_missing(tmp_path):
    outcomes = [{"step": s, "rc": None, "seconds": 0.0, "timed_out": False, "skipped": gpu_run.NO_CUDA}
                for s in ("machine", "anchor", "bench")]
    text = write_summary(tmp_path, outcomes, 1.0).read_text()
    assert "missing" not in text.split("## cuBLAS")[1].split("## Not verified")[0]
    assert f"anchor: skipped: {gpu_run.NO_CUDA}" in text and "pytest-junit.xml missing" in text


def test_junit_counts_failures_and_errors(tmp_path):
    (tmp_path / "j.xml").write_text(JUNIT)
    counts, failed = junit_summary(tmp_path / "j.xml")
    assert counts == {"tests": 3, "failures": 1, "errors": 0, "skipped": 1} and len(failed) == 1


def test_a_step_past_its_limit_is_interrupted(tmp_path):
    with open(tmp_path / "log", "w") as log:
        rc, timed_out = gpu_run._run([sys.executable, "-c", "import time; time.sleep(120)"], 1.0, log, {})
    assert timed_out and rc is not None


def test_without_cuda_the_cuda_steps_say_why(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_run, "_cuda", lambda: False)
    for step in ("machine", "anchor", "bench"):
        assert gpu_run._command(step, tmp_path) == gpu_run.NO_CUDA
    cmd = gpu_run._command("pytest", tmp_path)
    assert "-x" not in cmd and gpu_run.PYTEST_FILTER in cmd and f"--junitxml={tmp_path / 'pytest-junit.xml'}" in cmd
    assert "-k" not in gpu_run._command("pytest", tmp_path, "")  # the whole suite


def test_an_unknown_step_is_refused(tmp_path, capsys):
    assert gpu_run.main(["--out", str(tmp_path / "o"), "--only", "pytest,nope"]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_failures_are_named_from_the_log_when_pytest_was_cut_off_before_its_junit(tmp_path):
    (tmp_path / "gpu_run.log").write_text(
        "== pytest (limit 190 s): python -m pytest -v ...\n"
        "[gw0] [ 10%] PASSED tests/test_cudnn.py::test_manual[reference-float64]\n"
        "[gw3] [ 45%] FAILED tests/test_cudnn.py::test_manual[vectorised-float32]\n"
        "[gw1] [ 46%] ERROR lstm_bench/conformance/test_pt2.py::test_compiled[nn_lstm-cuda]\n"
        "FAILED tests/test_cudnn.py::test_manual[vectorised-float32] - AssertionError: dx 3.1 x the bound\n"
        "== pytest: exit None (TIMED OUT) after 190.0 s\n")
    text = write_summary(tmp_path, [{"step": "pytest", "rc": None, "seconds": 190.0, "timed_out": True,
                                     "skipped": ""}], 190.0).read_text()
    assert "pytest-junit.xml missing" in text
    named = text.split("from gpu_run.log):")[1].split("##")[0]
    assert named.split() == ["-", "FAILED", "tests/test_cudnn.py::test_manual[vectorised-float32]",
                             "-", "ERROR", "lstm_bench/conformance/test_pt2.py::test_compiled[nn_lstm-cuda]"]
    (tmp_path / "gpu_run.log").write_text("[gw0] [100%] PASSED tests/test_cudnn.py::test_manual[a]\n")
    assert "no failure in gpu_run.log" in write_summary(tmp_path, [], 1.0).read_text()
