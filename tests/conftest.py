"""Shared fixtures: devices to run on, and the float64 truth of a case, computed once."""
from __future__ import annotations

import pytest
import torch

NO_CUDA = "CUDA not available: torch.cuda.is_available() is False on this machine"

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _no_tf32():
    """Judge fp32 CUDA paths in true fp32: TF32 matmuls would need a looser policy."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
