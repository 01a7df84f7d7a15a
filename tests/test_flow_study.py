"""Effective memory, initialisation helpers, the studies, and their argument checks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lstm_bench.flow.memory_length as memory_length
import lstm_bench.flow.study as study
from lstm_bench.flow.init import chrono_init_, set_forget_bias_
from lstm_bench.flow.memory_length import effective_memory, measure_effective_memory
from lstm_bench.flow.models import CHRONO_SEED_OFFSET, X_SEED_OFFSET, make_model
from lstm_bench.flow.study import COMPARISON, INIT_STUDY, FlowSettings, build_model, compare_models, run_config


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
        FlowSettings(threshold=threshold).check()


def test_zero_samples_and_non_recurrent_models_are_rejected():
    with pytest.raises(ValueError, match="samples must be a positive int, got 0"):
        FlowSettings(samples=0).check()
    with pytest.raises(ValueError, match="seeds must be a positive int, got 0"):
        FlowSettings(seeds=0).check()
    with pytest.raises(ValueError, match="samples must be a positive int, got 0"):
        measure_effective_memory(make_model("LSTM", 3, 4), samples=0)
    with pytest.raises(ValueError, match="nn.RNN, nn.GRU or nn.LSTM, got Sequential"):
        measure_effective_memory(nn.Sequential(nn.Linear(3, 4)))


def test_rnn_decays_faster_than_lstm_with_forget_bias_1(one_thread):
    """The seed's claim, on its defaults T=100, H=128, I=64 (10 samples x 3 seeds to fit the budget)."""
    settings = FlowSettings(seq_len=100, hidden_size=128, input_size=64, samples=10, seeds=3, jacobian_steps=2,
                        jacobian_samples=1)
    rnn, lstm = compare_models(settings, configs=(COMPARISON[0], COMPARISON[3]))
    for s in (rnn, lstm):
        assert all(math.isfinite(r) and r > 0 for r in s.decay_ratios())
    assert rnn.decay_ratio() < lstm.decay_ratio()
    # and per seed, not just on average
    assert all(r < q for r, q in zip(rnn.decay_ratios(), lstm.decay_ratios()))
    assert rnn.memory.mean < lstm.memory.mean


def test_runs_are_deterministic(one_thread):
    settings = FlowSettings(seq_len=12, hidden_size=6, input_size=3, samples=4, seeds=2, jacobian_steps=3)
    a, b = run_config(COMPARISON[3], settings), run_config(COMPARISON[3], settings)
    for k in a.norms:
        assert torch.equal(a.norms[k], b.norms[k])
    assert a.jacobian.to_dict() == b.jacobian.to_dict()
    other = run_config(COMPARISON[3], FlowSettings(seq_len=12, hidden_size=6, input_size=3, samples=4, seeds=2,
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
    """On 2000 units the draws fill [1, t_max - 1]: exp(b_f) reaches near both ends, b_i = -b_f,
    and u = exp(b_f) is exactly the documented draw from the chrono stream of `seed`."""
    H, t_max = 2000, 50
    lstm = chrono_init_(make_model("LSTM", 3, H, seed=0), t_max=t_max, seed=0)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    b_i, b_f = b[:H], b[H:2 * H]
    assert torch.equal(b_i, -b_f)
    u = b_f.exp()
    assert float(u.min()) >= 1 - 1e-12 and float(u.max()) <= t_max - 1 + 1e-12
    # the expected gap at either end is (t_max - 2) / (H + 1) = 0.024; 0.5 is over 20 of them
    assert float(u.min()) < 1.5 and float(u.max()) > t_max - 1.5
    expected = 1 + torch.rand(H, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(CHRONO_SEED_OFFSET)) * (t_max - 2)
    assert torch.allclose(u, expected, rtol=1e-12, atol=0)
    # the other gates' biases are untouched
    assert torch.equal(lstm.bias_ih_l0[2 * H:], make_model("LSTM", 3, H, seed=0).bias_ih_l0[2 * H:])
    with pytest.raises(ValueError, match="t_max"):
        chrono_init_(nn.LSTM(3, 8), t_max=1)


def _uniforms(model: nn.Module) -> torch.Tensor:
    """The U(0, 1) draws behind make_model's weight_ih, in draw order."""
    k = 1 / math.sqrt(model.hidden_size)
    return (model.weight_ih_l0.detach().flatten().to(torch.float64) / k + 1) / 2


def test_chrono_draws_are_not_the_weights_draws():
    """Before the chrono stream had its own offset, u_j - 1 / (t_max - 2) was the uniform behind
    weight_ih.flatten()[j] of the same seed."""
    settings = FlowSettings(seq_len=30, hidden_size=16, input_size=3, samples=2, seeds=1)
    model = build_model(INIT_STUDY[3], settings, 0)
    H = settings.hidden_size
    u = ((model.bias_ih_l0 + model.bias_hh_l0)[H:2 * H].detach().exp() - 1) / (settings.seq_len - 2)
    weights = _uniforms(make_model("LSTM", 3, H, seed=settings.seed))[:H]
    assert float((u - weights).abs().max()) > 0.1
    assert abs(float(torch.corrcoef(torch.stack([u, weights]))[0, 1])) < 0.6


def test_measure_effective_memory_draws_inputs_from_the_input_stream(monkeypatch):
    """Inputs come from seed + X_SEED_OFFSET (as the studies' do), not from the weights' stream."""
    seen = []
    real = memory_length.step_gradients

    def spy(model, x, **kwargs):
        seen.append(x.clone())
        return real(model, x, **kwargs)

    monkeypatch.setattr(memory_length, "step_gradients", spy)
    model = make_model("LSTM", 3, 4, seed=0)
    first = measure_effective_memory(model, seq_len=6, samples=2, seed=0)
    expected = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(X_SEED_OFFSET))
    assert torch.equal(seen[0], expected)
    assert torch.equal(seen[0], study.inputs(FlowSettings(seq_len=6, samples=2, input_size=3), 0))
    assert measure_effective_memory(model, seq_len=6, samples=2, seed=0) == first  # deterministic
    assert torch.equal(seen[1], seen[0])


def test_curve_starts_at_the_last_step(one_thread):
    """curve()[...][d] is the value at distance d from the loss: d = 0 is step T, d = T - 1 step 1."""
    s = run_config(COMPARISON[0], FlowSettings(seq_len=10, hidden_size=6, input_size=3, samples=4, seeds=2))
    n = s.norms["x"]  # (seeds, T, samples)
    curve = s.curve("x")
    assert len(curve["mean"]) == 10
    assert curve["mean"][0] == pytest.approx(float(n[:, -1].mean()), rel=1e-12)
    assert curve["mean"][-1] == pytest.approx(float(n[:, 0].mean()), rel=1e-12)
    assert curve["median"][0] == pytest.approx(float(n[:, -1].flatten().quantile(0.5)), rel=1e-12)
    assert curve["mean"][0] > curve["mean"][-1]  # the RNN decays away from the loss


def test_non_finite_norms_are_a_value_error(monkeypatch):
    real = study.step_gradients

    def blow_up(model, x, **kwargs):
        grads = real(model, x, **kwargs)
        grads.dx[0, 0, 0] = float("inf")
        return grads

    monkeypatch.setattr(study, "step_gradients", blow_up)
    with pytest.raises(ValueError, match=r"RNN \(tanh\): non-finite dx norms at seed index 0"):
        run_config(COMPARISON[0], FlowSettings(seq_len=5, hidden_size=4, input_size=3, samples=2, seeds=1))
