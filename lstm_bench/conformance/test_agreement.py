"""Agreement with the float64 truth on the catalogue of cases (`lstm_bench.conformance.cases`): outputs,
final states and every gradient under the tolerance policy (`lstm_bench.conformance.policy`; in
bfloat16 and float16, relative to the vendor's own error), the result in the case's dtype
and device, the case left unchanged."""
from __future__ import annotations

import pytest
import torch

from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.conformance.policy import TF32_EPS, VENDOR, vendor_relative
from lstm_bench.core.devices import tf32
from lstm_bench.core.registry import get_impl


def test_agrees_with_float64_truth(lstm_kernel, lstm_case_spec):
    lstm_kernel.assert_agrees(lstm_case_spec, msg=f"{lstm_case_spec.label}: {lstm_case_spec.id}")


def test_tf32_mode_against_the_vendor(lstm_kernel):
    """On CUDA, TF32 as its own mode: a float32 case computed with TF32 matmuls (kernel and
    vendor alike) is judged like a low-precision one, against the vendor's error, with TF32's
    eps (2^-10). TF32 is otherwise off while a kernel is judged."""
    if lstm_kernel.device != "cuda":
        pytest.skip("TF32 is a CUDA mode (Ampere GPUs and newer)")
    case = lstm_kernel.case(CaseSpec(100, 8, 32, 64, "float32", seed=43, label="TF32"))
    truth = get_impl("autograd")(case.to(dtype=torch.float64))  # the truth alone: no sensitivity in TF32 mode
    with tf32(True):
        result, vendor = lstm_kernel.impl(case.clone()), get_impl(VENDOR)(case.clone())
    report = vendor_relative(result, vendor, truth, dtype=torch.float32, eps=TF32_EPS,
                             title=f"{lstm_kernel.name} in TF32 mode vs {VENDOR} in TF32 mode",
                             gradients=lstm_kernel.impl.support.gradients)
    assert report.passed, str(report)
