"""Finite differences: the manual paths, wrapped as autograd Functions, pass gradcheck in float64."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import LSTMWeights, make_case
from lstm_bench.function import lstm


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (3, 2, 3, 2), (5, 2, 2, 3)], ids=["T1", "T3", "T5"])
@pytest.mark.parametrize("name", ["reference", "vectorised"])
def test_gradcheck_manual_paths(name, sizes, device):
    case = make_case(*sizes, dtype=torch.float64, device=device, seed=4)
    inputs = tuple(t.clone().requires_grad_() for t in (case.x, case.h0, case.c0, *case.weights.as_tuple()))

    def f(x, h0, c0, *w):
        return lstm(name, x, h0, c0, LSTMWeights(*w))

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
