"""Finite differences: the kernel, wrapped as an autograd Function (`lstm_bench.function`),
passes `torch.autograd.gradcheck` in float64. Independent of any other implementation:
the truth here is the kernel's own forward, differentiated numerically."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import LSTMWeights
from lstm_bench.cases import CaseSpec
from lstm_bench.function import lstm


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (3, 2, 3, 2), (5, 2, 2, 3)], ids=["T1", "T3", "T5"])
def test_gradcheck_float64(lstm_kernel, sizes):
    case = lstm_kernel.case(CaseSpec(*sizes, dtype="float64", seed=4))
    inputs = tuple(t.clone().requires_grad_() for t in (case.x, case.h0, case.c0, *case.weights.as_tuple()))

    def f(x, h0, c0, *w):
        return lstm(lstm_kernel.name, x, h0, c0, LSTMWeights(*w))

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
