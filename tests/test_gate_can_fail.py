"""The gate goes red on broken paths: realistic BPTT bugs, registered as paths of
their own, must fail the same check that the real paths pass."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from lstm_bench import get_impl, make_case, register_impl, unregister_impl
from lstm_bench.impls import vectorised
from lstm_bench.tolerance import check_against_reference


def _regrad(result, **changes):
    return dataclasses.replace(result, grads={**result.grads, **changes})


def sign_flip_weight_hh(case):
    r = vectorised.run(case)
    return _regrad(r, weight_hh=-r.grads["weight_hh"])


def transposed_recurrent_weight(case):
    """The classic bug: back-propagating through weight_hh^T instead of weight_hh."""
    H = case.sizes[3]
    w = case.weights
    wrong = dataclasses.replace(w, weight_hh=torch.cat([blk.T for blk in w.weight_hh.split(H)]))
    r = vectorised.run(dataclasses.replace(case, weights=wrong))
    true_forward = vectorised.run(case)
    return _regrad(true_forward, weight_hh=r.grads["weight_hh"], x=r.grads["x"], h0=r.grads["h0"])


def swapped_gate_blocks(case):
    """i and f gradient blocks exchanged in d_weight_ih."""
    r = vectorised.run(case)
    i, f, g, o = r.grads["weight_ih"].chunk(4)
    return _regrad(r, weight_ih=torch.cat([f, i, g, o]))


def forgot_future_cell_gradient(case):
    """d_c0 without the carried d_c * f term of the first step."""
    r = vectorised.run(case)
    return _regrad(r, c0=r.grads["c0"] * 0.999)


def bias_hh_not_counted(case):
    r = vectorised.run(case)
    return _regrad(r, bias_hh=torch.zeros_like(r.grads["bias_hh"]))


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
        assert check_against_reference("vectorised", case).passed  # the control passes
        report = check_against_reference(name, case)
        assert not report.passed, f"the gate let {bug.__name__} through:\n{report}"
    finally:
        unregister_impl(name)
