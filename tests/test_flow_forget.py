"""simulate_gradient_decay against the closed form f^k, and the forget-gate statistics."""
from __future__ import annotations

import math

import pytest
import torch

from lstm_bench.flow.forget import decay_table, simulate_gradient_decay, span_products, steps_to_fall


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
