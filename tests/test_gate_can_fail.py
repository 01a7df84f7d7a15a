"""The gates go red on broken kernels: realistic BPTT bugs must fail the same checks that
the real implementations pass.

Part 1: classic derivation bugs against `judge_against_reference` directly.
Part 2: the conformance suite itself (`pytest --pyargs lstm_bench.conformance --lstm-impl
...`, run in-process with pytester) on one broken kernel per bug class of
tests/kernels/broken.py, checking that the gate meant for that class fails, and only on
the cases that can show the bug; and on an independent correct kernel
(tests/kernels/numpy_lstm.py), checking that the whole suite passes.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from lstm_bench import make_case, register_impl, unregister_impl
from lstm_bench.conformance.judge import judge_against_reference
from lstm_bench.impls import vectorised


def _regrad(result, **changes):
    return dataclasses.replace(result, grads={**result.grads, **changes})


def sign_flip_weight_hh(case):
    r = vectorised.run(case)
    return _regrad(r, weight_hh_l0=-r.grads["weight_hh_l0"])


def transposed_recurrent_weight(case):
    """The classic bug: back-propagating through weight_hh^T instead of weight_hh."""
    H = case.sizes[3]
    w_hh = case.weights["weight_hh_l0"]
    wrong = dataclasses.replace(case, weights={**case.weights,
                                               "weight_hh_l0": torch.cat([blk.T for blk in w_hh.split(H)])})
    r = vectorised.run(wrong)
    true_forward = vectorised.run(case)
    return _regrad(true_forward, weight_hh_l0=r.grads["weight_hh_l0"], x=r.grads["x"], h0=r.grads["h0"])


def swapped_gate_blocks(case):
    """i and f gradient blocks exchanged in d_weight_ih."""
    r = vectorised.run(case)
    i, f, g, o = r.grads["weight_ih_l0"].chunk(4)
    return _regrad(r, weight_ih_l0=torch.cat([f, i, g, o]))


def forgot_future_cell_gradient(case):
    """d_c0 without the carried d_c * f term of the first step."""
    r = vectorised.run(case)
    return _regrad(r, c0=r.grads["c0"] * 0.999)


def bias_hh_not_counted(case):
    r = vectorised.run(case)
    return _regrad(r, bias_hh_l0=torch.zeros_like(r.grads["bias_hh_l0"]))


def off_by_one_step_in_dx(case):
    r = vectorised.run(case)
    return _regrad(r, x=torch.roll(r.grads["x"], 1, dims=0))


BUGS = [sign_flip_weight_hh, transposed_recurrent_weight, swapped_gate_blocks, forgot_future_cell_gradient,
        bias_hh_not_counted, off_by_one_step_in_dx]


@pytest.mark.parametrize("bug", BUGS, ids=[b.__name__ for b in BUGS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_broken_path_fails_the_gate(bug, dtype):
    name = f"broken_{bug.__name__}"
    register_impl(name, bug, devices=["cpu"])
    try:
        case = make_case(7, 3, 5, 4, dtype=dtype, seed=9)
        assert judge_against_reference("vectorised", case).passed  # the control passes
        report = judge_against_reference(name, case)
        assert not report.passed, f"the gate let {bug.__name__} through:\n{report}"
    finally:
        unregister_impl(name)


# --- Part 2: the conformance suite on broken kernels -----------------------------------------

KERNELS = Path(__file__).parent / "kernels"


@pytest.fixture
def suite(pytester, forget_loaded_kernels):
    """Run the conformance suite on `kernel` (a function of tests/kernels/<module>.py)."""
    def run(kernel: str, *args: str, module: str = "broken"):
        return pytester.runpytest_inprocess(
            "--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
            "-p", "no:benchmark",  # pytest-benchmark warns under xdist, and nothing here is a benchmark
            "--lstm-impl", f"{KERNELS / (module + '.py')}:{kernel}", "--lstm-device", "cpu", "-q", *args)

    return run


def failed_ids(result) -> list[str]:
    return [rep.nodeid for rep in result.reprec.getreports("pytest_runtest_logreport") if rep.failed]


def size(nodeid: str, axis: str) -> int:
    return int(re.search(rf"-{axis}(\d+)-", nodeid).group(1))


AGREEMENT = "test_agrees_with_float64_truth"


@pytest.mark.parametrize("kernel, wrong_when", [
    ("remainder_tile_above_h64", lambda n: size(n, "H") > 64 and size(n, "H") % 64),
    ("batch_tile_above_b32", lambda n: size(n, "B") > 32),
    ("input_loop_bound_h", lambda n: size(n, "I") > size(n, "H")),
])
def test_size_threshold_bugs_fail_exactly_where_the_sizes_cross_the_boundary(suite, kernel, wrong_when):
    # The gate of the first wave went up to H 32, B 8, I 16: none of these bugs shows there.
    result = suite(kernel, "-k", AGREEMENT)
    failed = failed_ids(result)
    assert failed, f"the suite let {kernel} through"
    assert all(wrong_when(n) for n in failed), f"{kernel} failed where it is right: {failed}"
    assert result.parseoutcomes()["passed"] > 0  # the cases below the boundary pass


def test_truncated_bptt_fails_the_long_memory_cases(suite):
    # A window of 40 steps: invisible at PyTorch's default init in float32 (the gradient 40
    # steps back is ~1e-12 of the total there), caught where the forget gate is near 1.
    result = suite("window_40", "-k", AGREEMENT)
    failed = failed_ids(result)
    assert [n for n in failed if "T300" in n and "fb5" in n], "the long-memory case let a 40-step window through"
    lengths = [int(re.search(r"-T(\d+)-", n).group(1)) for n in failed]
    assert min(lengths) > 40, f"a window of 40 steps failed a case it computes exactly: {failed}"
    assert result.parseoutcomes()["passed"] > 0  # the cases it computes exactly pass (once it raised on all)


@pytest.mark.parametrize("kernel, gate, expect", [
    ("bfloat16_result", "test_result_in_the_cases_dtype_and_device", "is torch.bfloat16"),
    ("bfloat16_inside", AGREEMENT, "FAIL"),
    ("mutates_c0", "test_inputs_are_left_unchanged", "modified case.c0 in place"),
    ("mutates_c0", AGREEMENT, "modified case.c0 in place"),
    ("nondeterministic", "test_same_case_twice_gives_the_same_bits", "gave different bits in d_weight_hh_l0"),
    ("caches_weights_by_shape", "test_no_state_carried_between_calls", "state carried between calls"),
    ("nan_gradient", AGREEMENT, "NaN/Inf in result"),
])
def test_each_bug_class_fails_its_gate(suite, kernel, gate, expect):
    result = suite(kernel, "-k", gate, "--maxfail=1")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) > 0, f"the suite let {kernel} through {gate}"
    assert expect in result.stdout.str()


def test_precision_loss_fails_every_float32_and_float64_case(suite):
    result = suite("bfloat16_inside", "-k", AGREEMENT, "--tb=no")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0 and outcomes["failed"] >= 40, outcomes


def test_summing_in_low_precision_fails_the_long_low_precision_cases_only(suite):
    # The vendor (nn.LSTM: oneDNN for bfloat16 here, ATen for float16) sums in float32; a kernel
    # that adds its T per-step weight-gradient terms in the low dtype drifts with T.
    result = suite("sums_in_low_precision", "-k", AGREEMENT)
    failed = failed_ids(result)
    assert any("T300" in n and "bfloat16" in n for n in failed), failed
    assert any("T300" in n and "float16" in n and "bfloat16" not in n for n in failed), failed
    assert all(("bfloat16" in n or "float16" in n) for n in failed)  # right in float32 and float64


def test_a_declared_nondeterministic_kernel_shows_an_expected_failure(suite):
    result = suite("nondeterministic_declared", "-k", "test_same_case_twice_gives_the_same_bits", "-rx")
    assert result.parseoutcomes().get("xfailed") == 1
    assert "atomic adds in the weight-gradient reduction" in result.stdout.str()


def test_a_failing_random_case_is_shrunk_and_printed_as_a_check_command(suite):
    result = suite("remainder_tile_above_h64", "-k", "test_random_cases", "--lstm-examples", "60")
    assert result.parseoutcomes().get("failed") == 1
    out = result.stdout.str()
    command = re.search(r"reproduce: (lstm-bench check --impl \S+ -T \d+ -B \d+ -I \d+ -H (\d+) [^\n]*)", out)
    assert command, out[-3000:]
    assert int(command.group(2)) == 65  # shrunk to the smallest H that shows the bug


@pytest.mark.slow  # the whole suite (2.7 s): .ci/run runs it, the quick gate does not
def test_an_independent_correct_kernel_passes_the_whole_suite(suite):
    result = suite("numpy_lstm", module="numpy_lstm")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes["passed"] >= 60  # the catalogue, the random cases, the properties, gradcheck
