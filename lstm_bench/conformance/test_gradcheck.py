"""Finite differences: the kernel, wrapped as an autograd Function (`lstm_bench.conformance.function`),
passes `torch.autograd.gradcheck` in float64, on small cases of every configuration axis.
Independent of any other implementation: the truth here is the kernel's own forward,
differentiated numerically."""
from __future__ import annotations

import pytest
import torch

from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.conformance.function import lstm

# Finite differences cost two evaluations per input element, so the configured cases are as
# small as keeps T, B, I and H distinct where the configuration allows (B != H catches a
# transposed gradient); 262 and 116 elements instead of 492 and 228 halve the suite's longest tests.
CASES = {
    "T1": CaseSpec(1, 1, 1, 1, "float64", seed=4),
    "T3": CaseSpec(3, 2, 3, 2, "float64", seed=4),
    "T5": CaseSpec(5, 2, 2, 3, "float64", seed=4),
    "L2-bi": CaseSpec(2, 3, 1, 2, "float64", seed=5, num_layers=2, bidirectional=True),
    "P2-bf": CaseSpec(4, 2, 3, 4, "float64", seed=6, proj_size=2, batch_first=True),
    "lengths-bi": CaseSpec(4, 3, 1, 2, "float64", seed=7, bidirectional=True, lengths=(4, 1, 2)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_float64(lstm_kernel, name):
    lstm_kernel.needs_gradients("gradcheck differentiates the kernel's forward and compares its gradients")
    case = lstm_kernel.case(CASES[name])
    inputs = tuple(case.tensors()[k].clone().requires_grad_() for k in case.config.grad_names())
    assert torch.autograd.gradcheck(lambda *t: lstm(lstm_kernel.name, case, *t), inputs, eps=1e-6, atol=1e-8,
                                    rtol=1e-6)
