"""Instruction counts: which points, and a reason (never a crash) where valgrind is missing.

The counts themselves take ~20 s per collection under callgrind, too slow for the test suite;
their run-to-run variance is measured by `python -m studies.calibration instructions`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_bench import cli
from lstm_bench.bench import instructions, measure, sweep
from lstm_bench.bench.grid import Point
from lstm_bench.bench.instructions import (InstructionCount, InstructionsFailed, InstructionsUnavailable,
                                           count_instructions, ineligible_reason)
from lstm_bench.bench.results import load


def test_only_small_cpu_points_of_built_in_implementations():
    assert ineligible_reason(Point("vectorised", 10, 1, 64, 64)) is None
    assert "too big" in ineligible_reason(Point("vectorised", 100, 32, 256, 256))
    assert "too big" in ineligible_reason(Point("vectorised", 500, 1, 4, 4))
    assert "not cuda" in ineligible_reason(Point("vectorised", 10, 1, 64, 64, device="cuda"))
    assert "built-in" in ineligible_reason(Point("my_kernel", 10, 1, 64, 64))


def test_missing_valgrind_is_a_reason_not_a_crash(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    reason = instructions.unavailable_reason()
    assert "valgrind is not installed" in reason and "apt-get install valgrind" in reason
    with pytest.raises(InstructionsUnavailable, match="valgrind is not installed"):
        count_instructions(Point("vectorised", 2, 1, 4, 4))
    code = cli.main(["bench", "--instructions", "--impl", "vectorised", "-T", "2", "-B", "1", "-H", "4",
                     "--no-peak", "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "--instructions: valgrind is not installed" in err and not (tmp_path / "r.jsonl").exists()


def test_the_count_is_the_median_per_call_and_its_spread():
    c = InstructionCount(Point("vectorised", 2, 1, 4, 4), (1000, 1010, 1001), 2)
    assert c.per_call == 1001 and c.spread == pytest.approx(10 / 1001)


@pytest.mark.slow  # a subprocess importing torch: .ci/run runs it, the quick gate does not
def test_callgrind_starts_this_interpreter_whatever_path_says(monkeypatch, tmp_path):
    """collect_callgrind runs `python` from PATH: under the context it is this interpreter, even
    with another `python` first on PATH (a virtualenv not activated, as under `asv run --python=same`)."""
    other = tmp_path / "python"
    other.write_text("#!/bin/sh\nexit 1\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert Path(shutil.which("python")) == other
    with instructions._this_python_first_on_path():
        found = subprocess.run(["python", "-c", "import sys, torch; print(sys.executable)"], capture_output=True,
                               text=True)
        assert found.returncode == 0, found.stderr
        assert Path(found.stdout.strip()).resolve() == Path(sys.executable).resolve()
    assert Path(shutil.which("python")) == other  # PATH restored


@pytest.mark.parametrize("backend, pin", [
    ("vectorised[onednn-gemm+fused-cell]", "onednn-gemm+fused-cell"),
    ("vectorised[mkl-gemm+fused-loop|mkl-gemm+torch-ops]", "mkl-gemm+fused-loop"),  # a projection layer beside
    ("vectorised[mkl-gemm+torch-ops]", "mkl-gemm+torch-ops"),
    ("nn_lstm[onednn]", "rule"), (None, "rule")])
def test_the_counted_vectorised_route_is_the_timed_one_or_the_fixed_rule(backend, pin):
    assert instructions._route_pin(backend) == pin


def test_valgrinds_output_becomes_one_line():
    avx512 = OSError("Failed to collect callgrind profile:\nUnknown error.\n==1== Callgrind\n"
                     "vex amd64->IR: unhandled instruction bytes: 0x62 0xF1 0x7C 0x48\n==1== Process terminating "
                     "with default action of signal 4 (SIGILL)\n" + "==1== more\n" * 25)
    assert "cannot decode" in instructions._one_line(avx512) and "\n" not in instructions._one_line(avx512)
    missing = OSError("Failed to collect callgrind profile:\nUnknown error.\n==1== Command: python x.py\n"
                      "Traceback (most recent call last):\n  File \"x.py\", line 12\n"
                      "ModuleNotFoundError: No module named 'torch'\n")
    assert instructions._one_line(missing) == "ModuleNotFoundError: No module named 'torch'"


@pytest.mark.parametrize("failure", [InstructionsFailed("valgrind cannot decode an instruction"),
                                     InstructionsUnavailable("valgrind is not installed")])
def test_a_failed_count_keeps_the_points_timing(monkeypatch, tmp_path, capsys, failure):
    """The count is a note beside the timing: the point stays ok, its times recorded, the reason shown."""
    def fail(*args, **kwargs):
        raise failure
    monkeypatch.setattr(measure, "count_instructions", fail)
    monkeypatch.setattr(sweep, "_instructions_ok", lambda point: True)
    m = measure.measure_point(Point("vectorised", 3, 1, 4, 4), repeats=2, memory=False, instructions=True)
    assert m.instructions is None and m.instructions_note == f"not counted: {failure}"
    assert len(m.forward_backward_s) == 2
    out = tmp_path / "r.jsonl"
    monkeypatch.setattr(instructions, "unavailable_reason", lambda: None)
    code = cli.main(["bench", "--instructions", "--impl", "vectorised", "-T", "3", "-B", "1", "-H", "4", "--no-peak",
                     "--repeats", "2", "--device", "cpu", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    rec, = load(out).by_key().values()
    assert rec.status == "ok" and rec.measurement.instructions_note == f"not counted: {failure}"
    assert f"not counted: {failure}" in text and "FAILED" not in text


@pytest.mark.skipif(os.environ.get("LSTM_BENCH_COUNT_TESTS") != "1",
                    reason="set LSTM_BENCH_COUNT_TESTS=1 to count under callgrind (minutes a point)")
@pytest.mark.parametrize("impl", ["vectorised", "autograd", "nn_lstm", "reference"])
def test_every_built_in_implementation_is_counted(impl):
    """The real thing: valgrind runs each built-in implementation, the vectorised C library included."""
    reason = instructions.unavailable_reason()
    if reason:
        pytest.skip(reason)
    c = count_instructions(Point(impl, 3, 1, 8, 8), repeats=1)
    assert c.per_call > 0 and c.counted.startswith(impl)  # e.g. "nn_lstm (onednn)"
    if impl == "vectorised" and instructions.COUNT_MARCH:
        assert "+fused-loop]" in c.counted and f"-march={instructions.COUNT_MARCH}" in c.counted
