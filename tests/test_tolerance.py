"""The tolerance policy itself: what it passes, what it fails, and why."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lstm_bench import agreement, get_impl, make_case, register_impl, unregister_impl
from lstm_bench.conformance.judge import judge_against_reference, sensitivity
from lstm_bench.conformance.policy import FLOOR, judge_tensor

EPS32 = torch.finfo(torch.float32).eps


def _with(result, name, tensor):
    """A copy of `result` with one compared tensor replaced."""
    if name.startswith("d_"):
        return dataclasses.replace(result, grads={**result.grads, name[2:]: tensor})
    return dataclasses.replace(result, **{name: tensor})


@pytest.fixture(scope="module")
def pair():
    case = make_case(7, 3, 5, 4, dtype=torch.float64, seed=2)
    return case, get_impl("autograd")(case)


def test_identical_results_pass_and_report_zero(pair):
    _, ref = pair
    report = agreement(ref, ref)
    assert report.passed and report.max_rel == 0.0
    assert len(report.rows) == 10


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["result", "reference"])
def test_nan_or_inf_anywhere_fails(pair, bad, where):
    _, ref = pair
    poisoned = ref.grads["weight_hh_l0"].clone()
    poisoned[0, 0] = bad
    broken = _with(ref, "d_weight_hh_l0", poisoned)
    a, b = (broken, ref) if where == "result" else (ref, broken)
    report = agreement(a, b, sensitivity={k: 1e9 for k in ref.tensors()})  # even a huge bound
    assert not report.passed
    assert [r.name for r in report.failures] == ["d_weight_hh_l0"]
    assert "NaN/Inf" in report.failures[0].note


def test_float64_is_strict(pair):
    """An error of 1e-12 of scale is far above float64 rounding and must fail."""
    _, ref = pair
    out = ref.output + 1e-12 * ref.output.abs().max()
    assert not agreement(_with(ref, "output", out), ref).passed
    out = ref.output + 1e-16 * ref.output.abs().max()
    assert agreement(_with(ref, "output", out), ref).passed


def test_float32_floor_is_relative_to_scale():
    b = torch.tensor([1000.0, 1e-3], dtype=torch.float64)
    ok = b + torch.tensor([0.0, 0.5 * FLOOR * EPS32 * 1000.0], dtype=torch.float64)
    bad = b + torch.tensor([0.0, 3 * FLOOR * EPS32 * 1000.0], dtype=torch.float64)
    assert judge_tensor("t", ok.float(), b, eps=EPS32).passed
    assert not judge_tensor("t", bad, b, eps=EPS32).passed


def test_sensitivity_grows_with_conditioning():
    """Saturated gates over a long sequence are far worse conditioned than a normal case."""
    normal = make_case(100, 2, 8, 16, seed=1)
    saturated = make_case(100, 2, 8, 16, seed=1, weight_scale=10.0)
    ref_n, ref_s = (get_impl("autograd")(c.to(torch.float64)) for c in (normal, saturated))
    rel = lambda sens, ref: max(sens[k] / ref.tensors()[k].abs().max().item() for k in sens)  # noqa: E731
    assert rel(sensitivity(saturated), ref_s) > 10 * rel(sensitivity(normal), ref_n)


def test_float32_bound_tracks_conditioning():
    """The same absolute error passes where the problem is ill-conditioned and fails where it is not."""
    normal = make_case(100, 2, 8, 16, seed=1)
    saturated = make_case(100, 2, 8, 16, seed=1, weight_scale=10.0)
    sens_n, sens_s = sensitivity(normal), sensitivity(saturated)
    ref_s = get_impl("autograd")(saturated.to(torch.float64))
    ref_n = get_impl("autograd")(normal.to(torch.float64))
    # an error just inside the saturated case's bound is far outside the normal case's
    err = 0.5 * 16 * sens_s["d_weight_hh_l0"]
    for ref, sens, expect in ((ref_s, sens_s, True), (ref_n, sens_n, False)):
        w = ref.grads["weight_hh_l0"].clone()
        w[0, 0] += err
        got = _with(ref, "d_weight_hh_l0", w).to(torch.float32)
        assert agreement(got, ref, sensitivity=sens).passed is expect


def test_report_prints_a_table(pair):
    case, ref = pair
    report = judge_against_reference("vectorised", case)
    text = str(report)
    for column in ("mean abs", "max abs", "max rel", "PASS"):
        assert column in text
    for name in ("output", "h_n", "c_n", "d_x", "d_h0", "d_c0", "d_weight_ih_l0", "d_weight_hh_l0", "d_bias_ih_l0",
                 "d_bias_hh_l0"):
        assert f"\n{name} " in text
    assert report.to_dict()["passed"] is True


def test_shape_mismatch_is_a_clear_error(pair):
    _, ref = pair
    with pytest.raises(ValueError, match=r"cannot compare output: shape \(6, 3, 4\) against reference \(7, 3, 4\)"):
        agreement(_with(ref, "output", ref.output[:-1]), ref)
    with pytest.raises(ValueError, match="reference must be an lstm_bench.Result"):
        agreement(ref, {"output": 1})


def _moved_by(eps_multiples: float):
    """vectorised's result with every float32 output and gradient moved by `eps_multiples` eps of its scale."""
    def kernel(case):
        r = get_impl("vectorised")(case)
        move = lambda t: t + eps_multiples * EPS32 * t.abs().max()  # noqa: E731
        return dataclasses.replace(r, output=move(r.output), grads={k: move(v) for k, v in r.grads.items()})
    return kernel


@pytest.mark.parametrize("declared", [False, True])
def test_a_declared_fast_math_kernel_gets_the_fast_math_floor_and_no_more(declared):
    case = make_case(5, 3, 4, 6, seed=2)
    try:
        register_impl("fast_math_40", _moved_by(40), approximate_activations=("cpu",) if declared else False)
        register_impl("fast_math_600", _moved_by(600), approximate_activations=("cpu",) if declared else False)
        # ~40 eps (cuDNN's measured worst is ~50): a fast-math kernel passes, an exact one may not
        assert judge_against_reference("fast_math_40", case).passed == declared
        assert not judge_against_reference("fast_math_600", case).passed  # far beyond FAST_MATH_FLOOR either way
    finally:
        unregister_impl("fast_math_40")
        unregister_impl("fast_math_600")


def test_approximate_activations_names_known_devices():
    with pytest.raises(ValueError, match="approximate_activations names unknown device 'tpu'"):
        register_impl("bad_fast", _moved_by(0), approximate_activations=("tpu",))


def test_a_float32_result_computed_in_tf32_is_judged_with_tf32s_eps_and_no_looser():
    from lstm_bench.conformance.judge import judge_result, reference_of

    case = make_case(5, 3, 4, 6, seed=4)
    ref = reference_of(case)
    tf32_like = _moved_by(2.0 ** -11 / EPS32)(case)  # 5e-4 of scale: what TF32 did on the H200
    assert not judge_result(tf32_like, ref, torch.float32).passed
    assert judge_result(tf32_like, ref, torch.float32, tf32=True).passed
    assert not judge_result(_moved_by(0.05 / EPS32)(case), ref, torch.float32, tf32=True).passed  # 5 %: wrong
    assert not judge_result(tf32_like.to(torch.float64), ref, torch.float64, tf32=True).passed  # float64 stays float64
