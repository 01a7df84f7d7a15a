"""Agreement with the float64 truth on the catalogue of cases (`lstm_bench.cases`): outputs,
final states and all seven gradients under the tolerance policy (`lstm_bench.tolerance`),
the result in the case's dtype and device, the case left unchanged."""
from __future__ import annotations

from lstm_bench.testing import assert_agrees


def test_agrees_with_float64_truth(lstm_kernel, lstm_case_spec):
    lstm_kernel.case(lstm_case_spec)  # skips, with the reason, a case the kernel does not support
    assert_agrees(lstm_kernel.impl, lstm_case_spec, device=lstm_kernel.device,
                  msg=f"{lstm_case_spec.label}: {lstm_case_spec.id}")
