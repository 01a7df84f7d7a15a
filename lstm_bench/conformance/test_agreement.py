"""Agreement with the float64 truth on the catalogue of cases (`lstm_bench.cases`): outputs,
final states and every gradient under the tolerance policy (`lstm_bench.tolerance`; in
bfloat16 and float16, relative to the vendor's own error), the result in the case's dtype
and device, the case left unchanged."""
from __future__ import annotations



def test_agrees_with_float64_truth(lstm_kernel, lstm_case_spec):
    lstm_kernel.assert_agrees(lstm_case_spec, msg=f"{lstm_case_spec.label}: {lstm_case_spec.id}")
