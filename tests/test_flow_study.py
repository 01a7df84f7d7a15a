"""Effective memory, initialisation helpers, the studies, and their argument checks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lstm_bench.flow.init import chrono_init_, set_forget_bias_
from lstm_bench.flow.memory_length import effective_memory, measure_effective_memory
from lstm_bench.flow.models import make_model
from lstm_bench.flow.study import COMPARISON, Settings, compare_models, run_config


@pytest.fixture
def one_thread():
    """The studies are many small ops; on a busy 2-core machine a second thread only costs."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_effective_memory_is_the_longest_lag():
    # rows are steps 1..4, the loss on step 4 (lag 0); peak 1.0, threshold 0.01
    n = torch.tensor([0.001, 0.5, 0.005, 1.0])
    assert int(effective_memory(n, 0.01)) == 2  # step 2 (lag 2) passes; step 3 does not, step 1 does not
    assert int(effective_memory(n, 0.0001)) == 3  # everything passes: censored at T - 1
    assert int(effective_memory(n, 1.0)) == 0
    both = effective_memory(torch.stack([n, n.flip(0)], dim=1), 0.01)
    assert both.tolist() == [2, 3]


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, float("nan"), "0.1"])
def test_threshold_outside_unit_interval_is_rejected(threshold):
    with pytest.raises(ValueError, match="threshold must be a number in \\(0, 1\\]"):
        effective_memory(torch.ones(3), threshold)
    with pytest.raises(ValueError, match="threshold"):
        Settings(threshold=threshold).check()


def test_zero_samples_and_non_recurrent_models_are_rejected():
    with pytest.raises(ValueError, match="samples must be a positive int, got 0"):
        Settings(samples=0).check()
    with pytest.raises(ValueError, match="seeds must be a positive int, got 0"):
        Settings(seeds=0).check()
    with pytest.raises(ValueError, match="samples must be a positive int, got 0"):
        measure_effective_memory(make_model("LSTM", 3, 4), samples=0)
    with pytest.raises(ValueError, match="nn.RNN, nn.GRU or nn.LSTM, got Sequential"):
        measure_effective_memory(nn.Sequential(nn.Linear(3, 4)))


def test_rnn_decays_faster_than_lstm_with_forget_bias_1(one_thread):
    """The seed's claim, on its defaults T=100, H=128, I=64 (10 samples x 3 seeds to fit the budget)."""
    settings = Settings(seq_len=100, hidden_size=128, input_size=64, samples=10, seeds=3, jacobian_steps=2,
                        jacobian_samples=1)
    rnn, lstm = compare_models(settings, configs=(COMPARISON[0], COMPARISON[3]))
    for s in (rnn, lstm):
        assert all(math.isfinite(r) and r > 0 for r in s.decay_ratios())
    assert rnn.decay_ratio() < lstm.decay_ratio()
    # and per seed, not just on average
    assert all(r < q for r, q in zip(rnn.decay_ratios(), lstm.decay_ratios()))
    assert rnn.memory.mean < lstm.memory.mean


def test_runs_are_deterministic(one_thread):
    settings = Settings(seq_len=12, hidden_size=6, input_size=3, samples=4, seeds=2, jacobian_steps=3)
    a, b = run_config(COMPARISON[3], settings), run_config(COMPARISON[3], settings)
    for k in a.norms:
        assert torch.equal(a.norms[k], b.norms[k])
    assert a.jacobian.to_dict() == b.jacobian.to_dict()
    other = run_config(COMPARISON[3], Settings(seq_len=12, hidden_size=6, input_size=3, samples=4, seeds=2,
                                               jacobian_steps=3, seed=1))
    assert not torch.equal(a.norms["x"], other.norms["x"])


def test_forget_bias_counts_both_vectors_once():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    before = {n: p.detach().clone() for n, p in lstm.named_parameters()}
    set_forget_bias_(lstm, 1.0)
    H = 4
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            other = getattr(lstm, name.replace("bias_ih", "bias_hh"))
            total = (p + other).detach()
            assert torch.equal(total[H:2 * H], torch.ones(H))
            for sl in (slice(0, H), slice(2 * H, 4 * H)):
                assert torch.equal(p[sl], before[name][sl])
        elif name.startswith("weight"):
            assert torch.equal(p, before[name])
    with pytest.raises(ValueError, match="bias=False"):
        set_forget_bias_(nn.LSTM(3, 4, bias=False), 1.0)
    with pytest.raises(ValueError, match="nn.LSTM"):
        set_forget_bias_(nn.GRU(3, 4), 1.0)


def test_chrono_init():
    lstm = chrono_init_(nn.LSTM(3, 8), t_max=50, seed=0)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    b_i, b_f = b[:8], b[8:16]
    assert torch.equal(b_i, -b_f)
    assert bool((b_f >= 0).all()) and bool((b_f <= math.log(49) + 1e-6).all())
    assert float(b_f.std()) > 0  # spread over units, not one value
    with pytest.raises(ValueError, match="t_max"):
        chrono_init_(nn.LSTM(3, 8), t_max=1)
