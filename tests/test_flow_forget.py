"""simulate_gradient_decay against the closed form f^k, and the forget-gate statistics."""
from __future__ import annotations

import math

import pytest
import torch

from lstm_bench.flow.forget import (decay_table, forget_stats, forget_values, quantile_sample, simulate_gradient_decay,
                                    span_products, steps_to_fall)
from lstm_bench.flow.models import make_model
from lstm_bench.flow.norms import lstm_case


@pytest.mark.parametrize("f", [0.5, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("T", [100, 500, 1000])
def test_simulated_decay_is_f_to_the_k(f, T):
    g = simulate_gradient_decay(f, T)
    assert g.shape == (T + 1,)
    k = torch.arange(T + 1, dtype=torch.float64)
    closed = torch.tensor(f, dtype=torch.float64) ** k
    assert torch.allclose(g, closed, rtol=1e-12, atol=0)


def test_decay_table_values():
    rows = {r["f"]: r for r in decay_table()}
    assert math.isclose(rows[0.99]["T=1000"], math.exp(1000 * math.log(0.99)), rel_tol=1e-12)
    assert 4.3e-5 < rows[0.99]["T=1000"] < 4.4e-5  # small, but not "approximately 0"
    assert 0.36 < rows[0.999]["T=1000"] < 0.37


def test_per_step_values_and_steps_to_fall():
    f = torch.tensor([0.5, 1.0, 0.25])
    assert simulate_gradient_decay(f, 3).tolist() == [1.0, 0.5, 0.5, 0.125]
    for fv in (0.5, 0.9, 0.99):
        k = steps_to_fall(fv)
        assert fv ** k < 0.01 <= fv ** (k - 1)
    assert steps_to_fall(1.0) == math.inf


def test_span_products_brute_force():
    f = torch.rand(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    P = span_products(f)
    for k in range(6):
        expected = torch.ones(2, 3, dtype=torch.float64)
        for j in range(6 - k, 6):
            expected = expected * f[j]
        assert torch.allclose(P[k], expected, rtol=1e-12)


@pytest.mark.parametrize("bad", [(-0.1, 10), (1.5, 10), (0.5, -1), ([0.5, 0.5], 3)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        simulate_gradient_decay(*bad)


def test_forget_values_read_the_f_slice():
    """Gate biases i = -8, f = +8, g = 0, o = -4 (bias_ih carries them): only f is near 1, so
    reading any other slice fails; and f_1 (h_0 = 0) matches the closed form."""
    I, H = 3, 5
    model = make_model("LSTM", I, H, seed=0)
    with torch.no_grad():
        for n, value in enumerate((-8.0, 8.0, 0.0, -4.0)):
            model.bias_ih_l0[n * H:(n + 1) * H] = value
            model.bias_hh_l0[n * H:(n + 1) * H] = 0.0
    x = torch.randn(7, 2, I, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = forget_values(lstm_case(model, x))
    assert f.shape == (7, 2, H)
    assert float(f.min()) > 0.99
    w_f = model.weight_ih_l0[H:2 * H].detach()
    expected = torch.sigmoid(x[0] @ w_f.T + 8.0)
    assert torch.allclose(f[0], expected, rtol=1e-12, atol=0)


def test_quantiles_cover_every_step():
    """f (T, B, H) is time-major: the quantiles must see the late steps too, not only the first
    million values."""
    T, B, H = 250, 80, 100  # 2e6 values
    f = torch.full((T, B, H), 0.9, dtype=torch.float64)
    f[:100] = 0.1  # the first 40 % of the steps (800k values, all within the first million)
    q = forget_stats(f)["quantiles"]
    assert q["q50"] == pytest.approx(0.9) and q["q25"] == pytest.approx(0.1)


def test_quantile_sample_is_strided_over_the_whole_tensor():
    flat = torch.arange(10_000, dtype=torch.float64)
    assert torch.equal(quantile_sample(flat, limit=20_000), flat)  # under the limit: every value
    sample = quantile_sample(flat, limit=1000)
    assert sample.numel() <= 1000 and sample.numel() >= 900
    assert float(sample[0]) == 0 and float(sample[-1]) > 9900  # first to last
    steps = sample.diff()
    assert bool((steps == steps[0]).all())  # evenly strided
    assert float(torch.quantile(sample, 0.5)) == pytest.approx(5000, rel=0.01)
