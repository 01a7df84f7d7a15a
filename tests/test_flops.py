"""FLOP count checked against GEMMs listed by hand and against torch's flop counter."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lstm_bench import get_impl, make_case
from lstm_bench.bench.flops import lstm_flops


def test_tiny_case_by_hand():
    T, B, I, H = 2, 3, 5, 4
    # (m, k, n) of every GEMM; each costs 2 m k n.
    forward = [(T * B, I, 4 * H)] + [(B, H, 4 * H)] * T
    backward = [(T * B, 4 * H, I),  # dx
                (4 * H, T * B, I),  # dW_ih
                (4 * H, T * B, H)]  # dW_hh
    backward += [(B, 4 * H, H)] * T  # dh_{t-1}, t = T..1
    cost = lambda gemms: sum(2 * m * k * n for m, k, n in gemms)  # noqa: E731
    assert lstm_flops(T, B, I, H, backward=False) == cost(forward) == 1728
    assert lstm_flops(T, B, I, H, backward=True) == cost(forward) + cost(backward)


@pytest.mark.parametrize("T, B, I, H", [(1, 1, 1, 1), (3, 2, 5, 4), (7, 3, 6, 9)])
def test_matches_torch_flop_counter_on_the_autograd_path(T, B, I, H):
    impl = get_impl("autograd")
    forward, backward = impl.split()
    case = make_case(T, B, I, H, dtype=torch.float64)
    with FlopCounterMode(display=False) as fwd:
        graph = forward(case)
    with FlopCounterMode(display=False) as bwd:
        backward(case, graph)
    assert fwd.get_total_flops() == lstm_flops(T, B, I, H, backward=False)
    assert fwd.get_total_flops() + bwd.get_total_flops() == lstm_flops(T, B, I, H, backward=True)


@pytest.mark.parametrize("config", [dict(num_layers=2), dict(bidirectional=True), dict(proj_size=2),
                                    dict(num_layers=3, bidirectional=True, proj_size=3, batch_first=True)],
                         ids=["L2", "bi", "P2", "L3-bi-P3-bf"])
def test_configurations_match_torch_flop_counter_on_the_autograd_path(config):
    T, B, I, H = 3, 2, 5, 4
    forward, backward = get_impl("autograd").split()
    case = make_case(T, B, I, H, **config, dtype=torch.float64)
    with FlopCounterMode(display=False) as fwd:
        graph = forward(case)
    with FlopCounterMode(display=False) as bwd:
        backward(case, graph)
    shape = {k: v for k, v in config.items() if k != "batch_first"}
    assert fwd.get_total_flops() == lstm_flops(T, B, I, H, backward=False, **shape)
    assert fwd.get_total_flops() + bwd.get_total_flops() == lstm_flops(T, B, I, H, backward=True, **shape)


def test_padded_steps_are_not_counted():
    # lengths 3, 1: 4 real steps of 6; every GEMM term scales with the real steps
    full = lstm_flops(3, 2, 5, 4, backward=True, bidirectional=True)
    assert lstm_flops(3, 2, 5, 4, backward=True, bidirectional=True, steps=4) * 6 == full * 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="T must be a positive int"):
        lstm_flops(bad, 1, 1, 1, backward=True)
