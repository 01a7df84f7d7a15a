"""On CUDA, the manual implementations against cuDNN itself (with TF32 off, tests/conftest.py).

Every other agreement gate is the conformance suite's (lstm_bench/conformance), which the
project's own `pytest` runs on every built-in implementation."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import agreement, get_impl, make_case
from lstm_bench.conformance.judge import sensitivity
from lstm_bench.conformance.policy import FAST_MATH_FLOOR


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: torch.cuda.is_available() is False "
                    "on this machine; the manual-vs-cuDNN check needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("manual", ["reference", "vectorised"])
def test_manual_implementations_against_cudnn(manual, dtype):
    """On CUDA, with TF32 off (conftest), the manual implementations agree with cuDNN."""
    case = make_case(40, 8, 16, 32, dtype=dtype, device="cuda", seed=3)
    cudnn = get_impl("nn_lstm")(case)
    assert cudnn.backend == "cudnn", f"nn_lstm ran {cudnn.backend!r} on CUDA, expected cuDNN"
    sens = sensitivity(case)
    if dtype == torch.float64:
        report = agreement(get_impl(manual)(case), cudnn, sensitivity=sens)
    else:  # both float32: judge each against float64 truth
        ref = get_impl("autograd")(case.to(torch.float64))
        report = agreement(get_impl(manual)(case), ref, sensitivity=sens)
        # cuDNN declares approximate activations on CUDA: judged with the fast-math floor (policy.py)
        assert agreement(cudnn, ref, sensitivity=sens, floor=FAST_MATH_FLOOR).passed
    assert report.passed, str(report)
