"""Forward-only kernels (declared `gradients = False`: an inference engine) get a verdict on output,
h_n and c_n, from `check`, the suite and `bench`; gradient gates skip with the reason; and a
forward-only kernel with a wrong reverse direction, a wrong h_n or a NaN output is caught.
The kernels are tests/kernels/forward_only.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from clirun import run

from lstm_bench import make_case
from lstm_bench.bench.results import load
from lstm_bench.cli.args import EXIT_FAIL, EXIT_OK
from lstm_bench.conformance.judge import judge_against_reference
from lstm_bench.core.contract import Result, check_result
from lstm_bench.core.registry import load_impl
from lstm_bench.core.support import Support
from lstm_bench.machine.timing import THREADS_ENV

KERNELS = Path(__file__).parent / "kernels"
FILE = KERNELS / "forward_only.py"
WORDING = "forward only: gradients not judged (declared gradients=False)"


def spec(kernel: str) -> str:
    return f"{FILE}:{kernel}"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path, forget_loaded_kernels):
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path / "cache"))


# --- the declaration and the contract ------------------------------------------------------------

def test_the_declaration_is_read_from_the_function_and_checked():
    assert load_impl(spec("forward_lstm")).support.gradients is False
    assert Support.declare().gradients is True
    with pytest.raises(ValueError, match="gradients must be True or False"):
        Support.declare(gradients="no", name="k")


def test_the_contract_takes_no_gradients_from_a_forward_only_kernel_and_all_from_any_other():
    case = make_case(3, 2, 4, 5, seed=1)
    impl = load_impl(spec("forward_lstm"))
    result = impl(case)  # Impl.__call__ checks the result against the declaration
    assert result.grads == {}
    with pytest.raises(ValueError, match="returned grads with keys \\['x'\\]; a forward-only kernel returns grads"):
        load_impl(spec("returns_grads"))(case)
    with pytest.raises(ValueError, match=r"missing .*`my_lstm.gradients = False`"):
        load_impl(spec("undeclared"))(case)
    partial = Result(result.output, result.h_n, result.c_n, {"x": case.x.clone()})
    with pytest.raises(ValueError, match="missing"):
        check_result(partial, case, "k")  # a kernel that declares nothing owes every gradient
    with pytest.raises(ValueError, match="declared forward-only"):
        check_result(partial, case, "k", gradients=False)


def test_a_forward_only_report_names_output_h_n_c_n_and_says_why_no_more():
    case = make_case(4, 3, 2, 5, seed=2, bidirectional=True, num_layers=2)
    report = judge_against_reference(load_impl(spec("forward_lstm")), case)
    assert report.passed, str(report)
    assert [r.name for r in report.rows] == ["output", "h_n", "c_n"]
    assert WORDING in str(report) and report.to_dict()["forward_only"] is True


# --- check ------------------------------------------------------------------------------------

def test_check_passes_a_correct_forward_only_kernel_and_says_it_judged_the_forward(capsys):
    code, out, err = run(capsys, "check", "--impl", spec("forward_lstm"), "--summary")
    assert code == EXIT_OK, out + err
    assert "PASS (forward only)" in out and WORDING in out
    assert re.search(r"(\d+) passed, 0 failed", out) and int(re.search(r"(\d+) passed", out).group(1)) >= 30


@pytest.mark.parametrize("kernel, failing, tensors", [
    # the reverse direction run forwards in time: every two-direction case, and no other
    ("reverse_not_reversed", lambda case: "-bi" in case, "output, h_n, c_n"),
    # the reverse direction started at step T-1 whatever the length: two directions with lengths, only
    ("reverse_from_padded_end", lambda case: "-bi" in case and "-len" in case, "output, h_n, c_n"),
    # h_n read at T-1: lengths or two directions
    ("h_n_of_padded_end", lambda case: "-bi" in case or "-len" in case, "h_n"),
    ("nan_output", lambda case: True, "output"),
])
def test_check_catches_a_broken_forward_only_kernel_exactly_where_it_is_wrong(capsys, kernel, failing, tensors):
    code, out, err = run(capsys, "check", "--impl", spec(kernel))
    assert code == EXIT_FAIL, out + err
    rows = re.findall(rf"^(T\S+)\s+{kernel}\s+\S+\s+\S+\s+(PASS|FAIL)(?: \(([^)]*)\))?", out, re.M)
    assert rows, out
    failed = [case for case, verdict, _ in rows if verdict == "FAIL"]
    assert failed and all(failing(case) for case in failed), failed
    assert all(verdict == "PASS" for case, verdict, _ in rows if not failing(case))
    assert all(what == tensors for _, verdict, what in rows if verdict == "FAIL")
    if kernel == "nan_output":
        assert "NaN/Inf in result" in out


def test_check_fails_an_undeclared_kernel_without_gradients_naming_the_declaration(capsys):
    code, out, err = run(capsys, "check", "--impl", spec("undeclared"), "-T", "3", "-B", "2", "-H", "4")
    assert code == EXIT_FAIL
    assert "gradients = False" in out


# --- the suite --------------------------------------------------------------------------------

@pytest.fixture
def suite(pytester):
    def go(kernel: str, *args: str):
        return pytester.runpytest_inprocess(
            "--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
            "-p", "no:benchmark", "--lstm-impl", spec(kernel), "--lstm-device", "cpu", "-q", "-rs", *args)
    return go


@pytest.mark.slow  # the whole suite (6.5 s): .ci/run runs it, the quick gate does not
def test_the_suite_passes_a_correct_forward_only_kernel_and_skips_the_gradient_gates_with_the_reason(suite):
    result = suite("forward_lstm")
    outcomes = result.parseoutcomes()
    out = result.stdout.str()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, out[-3000:]
    assert outcomes["passed"] >= 60  # the catalogue, the random cases, the properties, the adversarial gates
    skipped_gradcheck = re.findall(rf"SKIPPED \[(\d+)\] .*{re.escape(WORDING)}; gradcheck", out)
    assert skipped_gradcheck and int(skipped_gradcheck[0]) == 6, out[-3000:]
    assert f"forward_lstm judged on output, h_n and c_n ({WORDING})" in out


@pytest.mark.parametrize("kernel, gate, expect", [
    ("reverse_not_reversed", "test_agrees_with_float64_truth and bi", "FAIL"),
    ("h_n_of_padded_end", "test_agrees_with_float64_truth and len", "h_n"),
    ("nan_output", "test_agrees_with_float64_truth", "NaN/Inf in result"),
    ("nan_output", "test_result_after_timing_loop", "NaN/Inf in result"),
])
def test_the_suite_catches_a_broken_forward_only_kernel(suite, kernel, gate, expect):
    result = suite(kernel, "-k", gate, "--maxfail=1")
    assert result.parseoutcomes().get("failed", 0) > 0, f"the suite let {kernel} through {gate}"
    assert expect in result.stdout.str()


# --- bench ------------------------------------------------------------------------------------

TINY = ["--repeats", "2", "--no-peak", "--no-progress", "--no-memory", "--device", "cpu"]


def test_bench_times_a_forward_only_kernel_s_forward_and_judges_it(tmp_path, capsys):
    out_file = tmp_path / "fwd.jsonl"
    code, out, err = run(capsys, "bench", "--impl", spec("forward_lstm"), "-T", "5", "-B", "3", "-I", "4", "-H", "6",
                         "--out", out_file, *TINY)
    assert code == EXIT_OK, out + err
    assert "FWD ONLY" in out and "GFLOP/s counts the forward's FLOPs" in out
    (rec,) = [r for r in load(out_file).records if r.status == "ok"]
    assert json.loads(out_file.read_text().splitlines()[-1])["measurement"]["timed"] == "forward"
    m = rec.measurement
    assert m.forward_only and m.worst_err_bound is not None and m.worst_err_bound <= 1
    # forward GEMM FLOPs of one layer, one direction: 8 T B H (I + H) (lstm_bench/bench/flops.py)
    assert rec.gflops == pytest.approx(8 * 5 * 3 * 6 * (4 + 6) / m.forward_backward_median_s / 1e9)


def test_bench_fails_a_forward_only_kernel_with_a_wrong_reverse_direction(tmp_path, capsys):
    code, out, err = run(capsys, "bench", "--impl", spec("reverse_not_reversed"), "--config", "bi", "-T", "5",
                         "-B", "3", "-I", "4", "-H", "6", "--out", tmp_path / "bad.jsonl", *TINY)
    assert code == EXIT_FAIL, out + err
    (rec,) = [r for r in load(tmp_path / "bad.jsonl").records if r.status != "skipped"]
    assert rec.status == "failed" and "wrong result on the first call: output" in rec.error


@pytest.mark.slow  # real worker processes, as tests/test_ab.py's
def test_ab_judges_a_forward_only_kernel_on_its_forward(tmp_path, capsys):
    import sys
    root = Path(__file__).parent.parent
    json_file = tmp_path / "ab.json"
    code, out, err = run(capsys, "ab", "--base", sys.executable, "--new", sys.executable,
                         "--impl", f"{spec('forward_lstm')},{spec('nan_output')}", "-T", "4", "-B", "2", "-H", "8",
                         "--device", "cpu", "--pairs", "2", "--processes", "1", "--min-time", "0.001",
                         "--base-env", f"PYTHONPATH={root}", "--new-env", f"PYTHONPATH={root}", "--no-progress",
                         "--json", json_file)
    assert code == EXIT_FAIL, out + err
    rows = {r["point"]["impl"]: r for r in json.loads(json_file.read_text())["points"]}
    assert rows["forward_lstm"]["outcome"] != "failed", rows["forward_lstm"]
    assert rows["nan_output"]["outcome"] == "failed" and "NaN/Inf in output" in rows["nan_output"]["reason"]
