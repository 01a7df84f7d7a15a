"""The measuring routine: thread count, repeats, warm-up, what a timed call runs."""
from __future__ import annotations

import time

import pytest
import torch

from lstm_bench import Result, get_impl, make_case
from lstm_bench.machine.timing import default_threads, set_threads, step_fn, time_fn

NO_CUDA = "CUDA not available: torch.cuda.is_available() is False on this machine"


def test_time_fn_returns_repeats_positive_seconds_after_warmup():
    calls = []
    times = time_fn(lambda: calls.append(1), device="cpu", repeats=4, warmup=2, number=3)
    assert len(times) == 4 and all(t > 0 for t in times)
    assert len(calls) == 2 + 4 * 3


def test_time_fn_measures_the_call():
    # A lower bound only: each call sleeps 5 ms, so no repeat can read less.
    times = time_fn(lambda: time.sleep(0.005), device="cpu", repeats=2, warmup=0, number=2)
    assert min(times) >= 0.005


@pytest.mark.parametrize("kwargs, word", [
    (dict(repeats=0), "repeats"), (dict(warmup=-1), "warmup"), (dict(number=0), "number"),
    (dict(device="tpu"), "device")])
def test_time_fn_bad_arguments(kwargs, word):
    args = {**dict(device="cpu", repeats=1, warmup=0), **kwargs}
    with pytest.raises(ValueError, match=word):
        time_fn(lambda: None, **args)


def test_set_threads_fixes_and_reports(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 == torch.get_num_threads()
        monkeypatch.setenv("LSTM_BENCH_THREADS", "1")
        assert default_threads() == 1 and set_threads() == 1
        monkeypatch.setenv("LSTM_BENCH_THREADS", "zero")
        with pytest.raises(ValueError, match="LSTM_BENCH_THREADS"):
            set_threads()
        with pytest.raises(ValueError, match="threads"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_step_fn_runs_forward_or_the_whole_step():
    impl, case = get_impl("vectorised"), make_case(3, 2, 4, 5)
    assert isinstance(step_fn(impl, case, backward=True)(), Result)
    saved = step_fn(impl, case, backward=False)()
    assert saved.layers[(0, 0)].gates.shape == (3, 2, 20)  # the forward's cache, not a Result


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_time_fn_on_cuda_counts_kernel_time():
    a = torch.randn(2048, 2048, device="cuda")
    times = time_fn(lambda: a @ a, device="cuda", repeats=3, warmup=1)
    assert len(times) == 3 and all(t > 0 for t in times)


@pytest.mark.parametrize("backward", [False, True])
def test_every_timed_call_ends_in_a_device_synchronisation(monkeypatch, backward):
    # On CUDA a host timer only sees kernel time if the call waits for the device; the
    # callable must do that itself, for asv and pytest-benchmark, which time it from outside.
    import lstm_bench.machine.timing as timing

    synced = []
    monkeypatch.setattr(timing, "synchronize", lambda device: synced.append(torch.device(device)))
    case = make_case(3, 2, 4, 5)
    timing.step_fn(get_impl("vectorised"), case, backward=backward)()
    assert synced == [case.device]
