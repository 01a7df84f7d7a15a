"""GPU timing on a real GPU (skipped without one): the point's GPU figures are complete and consistent,
the identity matches torch's own view of the device, and a CUDA-graph replay computes what the eager
call computes, so that graph mode times the same work."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import get_impl, make_case
from lstm_bench.bench.grid import Point
from lstm_bench.bench.measure import measure_point
from lstm_bench.machine.gpu import gpu_identity, l2_flush_bytes
from lstm_bench.machine.gpu_timing import capture, empty_launch_seconds

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: torch.cuda.is_available() "
                                "is False on this machine; GPU timing is checked against fakes in test_gpu_timing.py")


def test_the_identity_is_torchs_view_of_the_device():
    ident = gpu_identity("cuda")
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    assert ident["name"] == torch.cuda.get_device_name() and ident["sm_count"] == props.multi_processor_count
    assert ident["l2_bytes"] == props.L2_cache_size and ident["cudnn"] == torch.backends.cudnn.version()


@pytest.mark.parametrize("impl", ["vectorised", "nn_lstm", "autograd"])
def test_a_cuda_point_records_every_gpu_figure(impl, monkeypatch):
    monkeypatch.delenv("LSTM_BENCH_CUDA_CACHE", raising=False)
    m = measure_point(Point(impl, 8, 4, 16, 32, device="cuda"), repeats=3, warmup=1)
    g = m.gpu
    assert g is not None and g.cache == "cold"
    assert g.l2_flush_bytes == l2_flush_bytes(torch.cuda.get_device_properties(torch.cuda.current_device()))
    assert bool(g.graph_s) != bool(g.graph_reason)  # replays timed, or the reason they could not be
    assert len(g.graph_s) in (0, 3) and len(g.backward_s) == 3 and all(t > 0 for t in g.backward_s)
    assert g.launch_s is not None and g.launch_s > 0
    clock = g.clock
    assert clock["reason"] or len(clock["sm_clock_mhz"]) >= 2 * 3  # forward and forward+backward, each repeat


def test_warm_mode_is_recorded(monkeypatch):
    monkeypatch.setenv("LSTM_BENCH_CUDA_CACHE", "warm")
    m = measure_point(Point("vectorised", 4, 2, 8, 8, device="cuda"), repeats=2, warmup=1, accuracy=False,
                      memory=False)
    assert m.gpu.cache == "warm" and m.gpu.l2_flush_bytes == 0


@pytest.mark.parametrize("impl", ["vectorised", "nn_lstm", "autograd"])
def test_a_graph_replay_computes_what_the_eager_call_does(impl):
    case = make_case(6, 3, 8, 16, device="cuda", seed=4)
    kernel = get_impl(impl)
    eager = kernel.fn(case)
    held = {}

    def step():
        held["result"] = kernel.backward(case, kernel.forward(case))
    graph, reason = capture(step)
    if graph is None:
        pytest.skip(f"{impl}: {reason} (reported as the point's graph_reason)")
    for name in held["result"].tensors():
        held["result"].tensors()[name].zero_()  # replay must write them again
    graph.replay()
    torch.cuda.synchronize()
    for name, t in eager.tensors().items():  # close, not bitwise: cuDNN's weight gradients may sum in any order
        torch.testing.assert_close(held["result"].tensors()[name], t, msg=f"{impl}: {name} after a graph replay")


def test_an_empty_launch_is_measured():
    assert empty_launch_seconds(launches=50, repeats=2) > 0
