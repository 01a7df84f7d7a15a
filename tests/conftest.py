"""Shared fixtures: devices to run on, one CPU thread, TF32 off; pytester for running the suite in-process."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import all_impls, unregister_impl
from lstm_bench.core.devices import tf32
from lstm_bench.core.registry import SHIPPED_ADAPTERS

pytest_plugins = ["pytester"]  # tests/test_gate_can_fail.py runs the conformance suite in-process

NO_CUDA = "CUDA not available: torch.cuda.is_available() is False on this machine"

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _one_thread():
    """The tests judge correctness and verdicts, not speed: one torch thread, restored after each
    test (a test that times something fixes its own count). On a loaded 2-core machine, idle
    OpenMP threads spinning for the other core made the suite several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_tf32():
    """Judge fp32 CUDA paths in true fp32: TF32 matmuls would need a looser policy."""
    with tf32(False):
        yield


@pytest.fixture(autouse=True)
def _shipped_adapters_unregistered_after():
    """A shipped adapter's short name, once loaded, stays registered in the process; a later test's run
    over every registered implementation (`check` with no --impl) must not meet it."""
    yield
    for name in set(SHIPPED_ADAPTERS) & set(all_impls()):
        unregister_impl(name)


@pytest.fixture
def forget_loaded_kernels():
    """Unregister, after the test, every implementation it loaded (`--impl path:function`
    registers what it loads), so that no later test sees them."""
    before = set(all_impls())
    yield
    for name in set(all_impls()) - before:
        unregister_impl(name)
