"""What a correct kernel does besides agreeing: its result comes back in the case's dtype
and on its device, it leaves its inputs alone, gives the same bits twice, keeps no state
from one call to the next, and treats the sequences of a batch independently."""
from __future__ import annotations

import pytest

from lstm_bench.conformance.assertions import (assert_batch_independent, assert_deterministic, assert_inputs_unchanged,
                                               assert_stateless)
from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.core.support import DTYPES


@pytest.mark.parametrize("dtype", DTYPES)
def test_result_in_the_cases_dtype_and_device(lstm_kernel, dtype):
    case = lstm_kernel.case(CaseSpec(5, 3, 4, 6, dtype, seed=1))
    result = lstm_kernel.impl.fn(case)  # unwrapped: the contract's own check would raise before we look
    wrong = [f"{name} is {t.dtype} on {t.device}" for name, t in result.tensors().items()
             if t.dtype != case.dtype or t.device != case.device]
    assert not wrong, f"{lstm_kernel.name} on a {case.dtype} case on {case.device}: " + "; ".join(wrong)


def _small(kernel, seed: int = 1, **sizes) -> CaseSpec:
    """A small case in float64 if the kernel computes in it, else in its first declared dtype."""
    T, B, I, H = (sizes.get(k, d) for k, d in (("T", 6), ("B", 4), ("I", 5), ("H", 7)))
    return kernel.supported([CaseSpec(T, B, I, H, dtype, seed=seed) for dtype in ("float64",
                                                                                  *kernel.impl.support.dtypes)])


def test_inputs_are_left_unchanged(lstm_kernel):
    assert_inputs_unchanged(lstm_kernel.impl, lstm_kernel.case(_small(lstm_kernel)))


def test_same_case_twice_gives_the_same_bits(lstm_kernel, request):
    support = lstm_kernel.impl.support
    if not support.deterministic:
        request.applymarker(pytest.mark.xfail(reason=f"{lstm_kernel.name} declares itself non-deterministic: "
                                                     f"{support.why_nondeterministic}", strict=False))
    assert_deterministic(lstm_kernel.impl, lstm_kernel.case(_small(lstm_kernel)))


def test_no_state_carried_between_calls(lstm_kernel):
    # B, then: the same shape with other numbers (a cache of converted weights keyed by
    # shape), another T and B with the same I and H (a cache keyed by H), then B again.
    spec = _small(lstm_kernel, seed=1)
    others = [spec.replace(seed=2), spec.replace(T=spec.T + 3, B=spec.B + 1, seed=3)]
    assert_stateless(lstm_kernel.impl, lstm_kernel.case(spec), *(lstm_kernel.case(s) for s in others))


def test_sequences_of_a_batch_are_independent(lstm_kernel):
    assert_batch_independent(lstm_kernel.impl, lstm_kernel.case(_small(lstm_kernel, T=9, B=4, I=5, H=6)))
