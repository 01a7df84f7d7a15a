"""The shipped ONNX Runtime adapter (`onnxruntime`, lstm_bench/adapters/onnxruntime_lstm.py): a
forward-only kernel that passes `check` and the suite on every case it declares, while the same
adapter with its gate order or its directions wrong is caught. Needs the extra:
`pip install "lstm-bench[onnxruntime]"` (skipped without it)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from clirun import run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from lstm_bench.bench.results import load  # noqa: E402
from lstm_bench.cli.args import EXIT_FAIL, EXIT_OK  # noqa: E402
from lstm_bench.core.registry import get_impl  # noqa: E402
from lstm_bench.machine.timing import THREADS_ENV  # noqa: E402

BROKEN = Path(__file__).parent / "kernels" / "broken_onnxruntime.py"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path, forget_loaded_kernels):
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_the_short_name_loads_a_forward_only_float32_cpu_kernel_without_projection():
    support = get_impl("onnxruntime").support
    assert support.gradients is False and support.dtypes == ("float32",) and support.devices == ("cpu",)
    assert "projection" not in support.features and "lengths" in support.features


@pytest.mark.slow  # check's default run (1.4 s): .ci/run runs it, the quick gate does not
def test_check_passes_it_on_every_case_it_declares(capsys):
    code, out, err = run(capsys, "check", "--impl", "onnxruntime", "--depth", "default", "--summary")
    assert code == EXIT_OK, out + err
    row = re.search(r"^onnxruntime\s.*\s(\d+)\s+0\s+(\d+)\s+\S+\s+(\S+)\s+PASS \(forward only\)", out, re.M)
    assert row, out
    assert int(row.group(1)) >= 30 and float(row.group(3)) <= 1


@pytest.mark.slow  # the whole suite (4.5 s): .ci/run runs it, the quick gate does not
def test_the_suite_passes_it(pytester):
    result = pytester.runpytest_inprocess(
        "--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
        "-p", "no:benchmark", "--lstm-impl", "onnxruntime", "--lstm-device", "cpu", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes["passed"] >= 30  # float32 catalogue without projection, random cases, properties


@pytest.mark.parametrize("kernel, failing", [
    ("gate_order_not_converted", lambda case: True),  # every case: the gates are mixed up
    ("directions_swapped", lambda case: "-bi" in case),  # two directions, and only there
])
def test_check_catches_the_adapter_with_its_layout_wrong(capsys, kernel, failing):
    code, out, err = run(capsys, "check", "--impl", f"{BROKEN}:{kernel}")
    assert code == EXIT_FAIL, out + err
    rows = re.findall(rf"^(T\S+)\s+{kernel}\s+\S+\s+\S+\s+(PASS|FAIL)", out, re.M)
    failed = [case for case, verdict in rows if verdict == "FAIL"]
    assert failed and all(failing(case) for case in failed), failed
    assert all(verdict == "PASS" for case, verdict in rows if not failing(case))


@pytest.mark.slow  # a suite run: .ci/run runs it, the quick gate does not
def test_the_suite_catches_the_directions_swapped(pytester):
    result = pytester.runpytest_inprocess(
        "--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
        "-p", "no:benchmark", "--lstm-impl", f"{BROKEN}:directions_swapped", "--lstm-device", "cpu", "-q",
        "-k", "test_agrees_with_float64_truth")
    assert result.parseoutcomes().get("failed", 0) > 0


def test_bench_times_its_forward_and_judges_it(tmp_path, capsys):
    out_file = tmp_path / "ort.jsonl"
    code, out, err = run(capsys, "bench", "--impl", "onnxruntime", "--config", "bi", "-T", "5", "-B", "3", "-I", "4",
                         "-H", "6", "--device", "cpu", "--repeats", "2", "--no-peak", "--no-progress", "--no-memory",
                         "--out", out_file)
    assert code == EXIT_OK, out + err
    (rec,) = [r for r in load(out_file).records if r.status == "ok"]
    assert rec.measurement.forward_only and rec.measurement.worst_err_bound <= 1
