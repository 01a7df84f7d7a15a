"""GPU timing's plumbing against a fake torch.cuda: the flush and the untimed work stay outside the
event window, graph mode captures once and times replays, a kernel that cannot be captured gets a
reason, the phases are timed apart, the launch floor, and the record of which mode ran."""
from __future__ import annotations

import contextlib
import dataclasses
from types import SimpleNamespace

import pytest
import torch

from lstm_bench import get_impl, make_case
from lstm_bench.bench.flops import lstm_flops, phase_flops
from lstm_bench.bench.records import Measurement
from lstm_bench.machine import gpu_timing, timing
from lstm_bench.machine.gpu_timing import (GpuFigures, cache_mode, capture, empty_launch_seconds, event_times,
                                           graph_times, phase_halves, phase_times, sequential_launches)


class FakeCuda:
    """A device whose clock only moves when work "runs": each event records the clock (in ms, as
    torch's elapsed_time reports), and the test's callables advance it by what they cost."""

    def __init__(self):
        self.now = 0.0  # ms
        self.log: list[str] = []
        self.capturing = False
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.at = None

            def record(self):
                self.at = fake.now
                fake.log.append("record")

            def synchronize(self):
                fake.log.append("sync")

            def elapsed_time(self, end):
                return end.at - self.at

        class Stream:
            def wait_stream(self, other):
                fake.log.append("wait")

        class CUDAGraph:
            replays = 0

            def replay(self):
                CUDAGraph.replays += 1
                fake.run(2.0, "replay")

        self.Event, self.Stream, self.CUDAGraph = Event, Stream, CUDAGraph

    def run(self, ms: float, what: str) -> None:
        self.now += ms
        self.log.append(what)

    def current_stream(self):
        return self.Stream()

    @contextlib.contextmanager
    def stream(self, s):
        self.log.append("side-stream")
        yield

    @contextlib.contextmanager
    def graph(self, g):
        self.capturing = True
        self.log.append("capture")
        try:
            yield
        finally:
            self.capturing = False

    def synchronize(self, *device):
        self.log.append("device-sync")

    def _sleep(self, cycles):
        assert cycles == 0
        self.run(0.005, "launch")


def test_the_flush_and_the_preparation_run_outside_the_event_window():
    fake = FakeCuda()
    times = event_times(lambda arg: fake.run(3.0, f"call({arg})"), repeats=2, number=2, cuda=fake,
                        flush=lambda: fake.run(1000.0, "flush"), prepare=lambda: fake.run(500.0, "forward") or "saved")
    assert times == [3e-3, 3e-3]  # neither the 1 s flush nor the 0.5 s untimed forward is counted
    first = fake.log[:6]
    assert first == ["forward", "flush", "record", "call(saved)", "record", "forward"]
    assert fake.log.count("sync") == 2  # one synchronisation per repeat, not per call


def test_a_flush_inside_the_window_would_be_counted():
    # the control: the same fake counts whatever runs between the events
    fake = FakeCuda()
    times = event_times(lambda: (fake.run(1000.0, "flush"), fake.run(3.0, "call")), repeats=1, cuda=fake)
    assert times == [1.003]


def test_the_clock_is_sampled_once_per_repeat_outside_the_window():
    fake, samples = FakeCuda(), []
    sampler = SimpleNamespace(sample=lambda: samples.append(fake.log[-1]))
    event_times(lambda: fake.run(1.0, "call"), repeats=3, cuda=fake, clock=sampler)
    assert samples == ["sync"] * 3  # after the repeat's events were read


def test_graph_mode_captures_once_and_times_replays():
    fake, calls = FakeCuda(), []
    times, reason = graph_times(lambda: calls.append(fake.capturing), repeats=4, warmup=2, cuda=fake,
                                flush=lambda: fake.run(1000.0, "flush"))
    assert reason == "" and times == [2e-3] * 4  # each replay costs 2 ms in the fake; flushes are outside
    assert calls == [False, False, False, True]  # three warm-up calls on a side stream, then one captured
    assert fake.log.index("side-stream") < fake.log.index("capture")
    assert fake.CUDAGraph.replays == 2 + 4


@pytest.mark.parametrize("when", ["warm-up", "capture"])
def test_a_kernel_that_cannot_be_captured_is_a_reason_not_a_crash(when):
    fake = FakeCuda()

    def call():
        if when == "warm-up" or fake.capturing:
            raise RuntimeError("operation not permitted when stream is capturing\nmore lines")
    graph, reason = capture(call, cuda=fake)
    assert graph is None
    assert reason == ("cannot be captured in a CUDA graph: RuntimeError: operation not permitted when stream is "
                      "capturing")
    times, why = graph_times(call, repeats=3, cuda=fake)
    assert times == [] and why == reason


def test_the_empty_launch_time_and_the_sequential_floor():
    fake = FakeCuda()
    launch = empty_launch_seconds(cuda=fake, launches=10, repeats=3)
    assert launch == pytest.approx(5e-6)  # 0.005 ms per fake launch
    assert sequential_launches(100) == 200 and sequential_launches(100, backward=False) == 100
    assert sequential_launches(10, num_layers=2, bidirectional=True) == 80
    fig = GpuFigures("cold", 50 * 2 ** 20, launch_s=launch)
    assert fig.launch_floor_s(100) == pytest.approx(200 * 5e-6)
    assert GpuFigures("warm", 0).launch_floor_s(100) is None


def _fake_impl(order: list[str], *, halves: bool = True, split: bool = True):
    def forward(case):
        order.append("forward")
        return "saved"

    def backward(case, saved):
        order.append("backward")

    def data(case, saved):
        order.append(f"data({saved})")
        return "partial"

    def weights(case, saved, partial):
        order.append(f"weights({saved},{partial})")

    if split:
        backward.data, backward.weights = data, weights
    return SimpleNamespace(name="fake", fn=lambda case: None, forward=forward if halves else None,
                           backward=backward if halves else None)


def test_each_phase_is_timed_alone_after_what_it_needs():
    order: list[str] = []
    impl = _fake_impl(order)
    case = SimpleNamespace(device=torch.device("cpu"))
    times, reason = phase_times(impl, case, repeats=2)
    assert reason == "" and set(times) == {"backward", "backward_data", "backward_weights"}
    assert all(len(v) == 2 and all(t >= 0 for t in v) for v in times.values())
    assert order == ["forward", "backward"] * 2 + ["forward", "data(saved)"] * 2 + \
        ["forward", "data(saved)", "weights(saved,partial)"] * 2


def test_on_cuda_the_phases_exclude_what_runs_before_them():
    fake = FakeCuda()

    def backward(case, saved):
        fake.run(7.0, "backward")
    backward.data = lambda case, saved: fake.run(4.0, "data")
    backward.weights = lambda case, saved, partial: fake.run(3.0, "weights")
    slow = SimpleNamespace(name="fake", fn=None, forward=lambda case: fake.run(100.0, "forward"), backward=backward)
    times, _ = phase_times(slow, SimpleNamespace(device=torch.device("cuda")), repeats=2, cuda=fake)
    # the 100 ms forward (and the 4 ms data half before the weights) run before each start event
    assert times == {"backward": [7e-3] * 2, "backward_data": [4e-3] * 2, "backward_weights": [3e-3] * 2}


def test_phases_say_why_they_are_missing():
    times, reason = phase_times(_fake_impl([], halves=False), SimpleNamespace(device=torch.device("cpu")), repeats=1)
    assert times == {} and "no forward/backward halves" in reason
    times, reason = phase_times(_fake_impl([], split=False), SimpleNamespace(device=torch.device("cpu")), repeats=1)
    assert set(times) == {"backward"} and "backward.data and backward.weights" in reason
    assert phase_halves(get_impl("vectorised")) is None


@pytest.mark.parametrize("impl", ["autograd", "nn_lstm_native"])
def test_an_autograd_graph_gives_its_data_half_alone(impl, monkeypatch):
    """cuDNN's RNN backward runs BackwardData alone when autograd asks for x, h0, c0 only: the data
    half of every implementation whose forward is an autograd graph, timed for real here on the CPU."""
    asked = []
    real_grad = torch.autograd.grad

    def spy(outputs, inputs, *args, **kwargs):
        asked.append(len(inputs))
        return real_grad(outputs, inputs, *args, **kwargs)
    monkeypatch.setattr(torch.autograd, "grad", spy)
    case = make_case(3, 2, 4, 5)
    times, reason = phase_times(get_impl(impl), case, repeats=2)
    assert set(times) == {"backward", "backward_data"} and reason == gpu_timing.WEIGHTS_DERIVED
    n_grads = len(case.config.grad_names())
    assert asked == [n_grads] * 2 + [3] * 2  # the whole backward, then x, h0, c0 only
    graph = get_impl(impl).forward(case)
    dx, dh0, dc0 = gpu_timing.autograd_data_half(case, graph)
    whole = get_impl(impl).backward(case, get_impl(impl).forward(case))
    for got, name in ((dx, "x"), (dh0, "h0"), (dc0, "c0")):  # the same gradients as the whole backward's
        torch.testing.assert_close(got, whole.grads[name])


def test_phase_flops_add_up_to_the_step():
    f = phase_flops(100, 64, 512, 512)
    assert f["forward"] == 8 * 100 * 64 * 512 * (512 + 512)
    assert f["backward"] == f["backward_data"] + f["backward_weights"] == 2 * f["forward"]
    assert f["forward"] + f["backward"] == lstm_flops(100, 64, 512, 512, backward=True) == 80_530_636_800
    two = phase_flops(10, 4, 8, 16, num_layers=2, bidirectional=True, proj_size=4)
    assert two["forward"] + two["backward"] == lstm_flops(10, 4, 8, 16, True, num_layers=2, bidirectional=True,
                                                          proj_size=4)


def test_the_cache_mode_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(gpu_timing.CACHE_ENV, raising=False)
    assert cache_mode() == "cold" and cache_mode("warm") == "warm"
    monkeypatch.setenv(gpu_timing.CACHE_ENV, " Warm ")
    assert cache_mode() == "warm"
    monkeypatch.setenv(gpu_timing.CACHE_ENV, "tepid")
    with pytest.raises(ValueError, match="LSTM_BENCH_CUDA_CACHE"):
        cache_mode()
    with pytest.raises(ValueError, match="cold, warm"):
        cache_mode("hot")
    assert timing.time_fn(lambda: None, device="cpu", repeats=1, warmup=0)  # the CPU never reads it
    with pytest.raises(ValueError, match="hot"):
        timing.time_fn(lambda: None, device="cpu", repeats=1, warmup=0, cache="hot")


@pytest.mark.parametrize("mode, flushed", [("cold", True), ("warm", False)])
def test_time_fn_on_cuda_flushes_only_when_cold(monkeypatch, mode, flushed):
    fake, made = FakeCuda(), []

    class Flush:
        def __init__(self, device):
            made.append(device)

        def __call__(self):
            fake.run(1000.0, "flush")

    monkeypatch.setattr(timing, "check_device", lambda d: torch.device("cuda"))
    monkeypatch.setattr(timing, "L2Flush", Flush)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(timing, "event_times", lambda *a, **k: event_times(*a, **k, cuda=fake))
    calls = []
    times = timing.time_fn(lambda: (calls.append(1), fake.run(2.0, "call")), device="cuda", repeats=3, warmup=1,
                           cache=mode)
    assert times == [2e-3] * 3 and len(calls) == 1 + 3
    assert bool(made) is flushed and fake.log.count("flush") == (3 if flushed else 0)


def test_gpu_figures_travel_with_the_measurement():
    fig = GpuFigures("cold", 52_428_800, graph_s=(1e-3, 2e-3), backward_s=(3e-3,), launch_s=4e-6,
                     phases_reason="no split", clock={"sm_clock_mhz": [1980], "throttled": 0})
    m = Measurement((1.0,), (2.0,), gpu=fig)
    back = Measurement.from_json(m.to_json())
    assert back.gpu == fig and back == m
    assert "gpu" not in Measurement((1.0,), (2.0,)).to_json()  # CPU records are unchanged
    assert GpuFigures.from_json(GpuFigures("warm", 0, graph_reason="why").to_json()).graph_reason == "why"
    for bad in ({"cache": "hot"}, {"cache": "cold", "graph_s": [-1.0]}, "cold"):
        with pytest.raises(ValueError, match="measurement.gpu"):
            GpuFigures.from_json(bad)


def test_measure_gpu_records_graph_phases_launch_and_mode(monkeypatch):
    """measure_gpu's plumbing with torch.cuda faked and a real implementation on a CPU case."""
    fake = FakeCuda()
    for name in ("Event", "Stream", "CUDAGraph", "current_stream", "stream", "graph", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(gpu_timing, "L2Flush", lambda device: SimpleNamespace(nbytes=123, __call__=None))
    monkeypatch.setattr(gpu_timing, "launch_seconds", lambda device: 5e-6)
    case = make_case(3, 2, 4, 5)
    fig = gpu_timing.measure_gpu(get_impl("vectorised"), case, repeats=2, warmup=1, cache="warm")
    assert fig.cache == "warm" and fig.l2_flush_bytes == 0 and fig.graph_s == (2e-3, 2e-3) and fig.graph_reason == ""
    assert len(fig.backward_s) == 2 and fig.backward_data_s == () and "backward.data" in fig.phases_reason
    assert fig.launch_s == 5e-6 and dataclasses.asdict(fig)["clock"] == {}
