"""The JAX bridge (lstm_bench.adapters.jax_bridge) and the JAX and Flax adapters: the bridge's gradients
against torch autograd on the same function, the adapters judged by the suite's assertions, and
broken variants (a wrong gate order, Flax's carry taken as (h, c)) caught. Skipped without jax/flax."""
from __future__ import annotations

import types

import pytest
import torch

from lstm_bench.adapters.foreign import bucketed_forward, foreign_kernel
from lstm_bench.adapters.layout import Layout
from lstm_bench.conformance.assertions import assert_agrees, assert_conforms
from lstm_bench.conformance.cases import CaseSpec, catalogue
from lstm_bench.core.registry import get_impl

# Importing JAX and Flax takes 1.5 s a process (AMD EPYC): every test here is slow (.ci/run's second
# stage runs them), and the module imports them in fixtures, so that collecting it costs nothing.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jax() -> types.ModuleType:
    pytest.importorskip("flax")
    return pytest.importorskip("jax")


@pytest.fixture(scope="module")
def bridge(jax) -> types.ModuleType:
    """lstm_bench.adapters.jax_bridge."""
    return pytest.importorskip("lstm_bench.adapters.jax_bridge")


TORCH_DTYPES = (torch.float32, torch.float64)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_the_bridge_gives_torchs_gradients_on_the_same_function(jax, bridge, dtype):
    torch.manual_seed(0)
    # y = tanh(x @ w) * m, s = sum(x^2): the same function written in torch is the reference.
    op = bridge.jax_op(lambda x, w, m: (jax.numpy.tanh(x @ w) * m, (x * x).sum()))
    x = torch.randn(3, 4, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    m = torch.tensor([[True, False, True, True, False]] * 3)
    y, s = op(x, w, m)
    assert y.dtype == dtype and s.dtype == dtype  # float64 computed in float64, not silently in float32
    d_y = torch.randn(3, 5, dtype=dtype)
    got = torch.autograd.grad((y, s), (x, w), (d_y, torch.tensor(0.5, dtype=dtype)))
    y_ref, s_ref = torch.tanh(x @ w) * m, (x * x).sum()
    want = torch.autograd.grad((y_ref, s_ref), (x, w), (d_y, torch.tensor(0.5, dtype=dtype)))
    # float32: the framework's tanh may differ from torch's by ulps (a gradient 1.6e-6 apart was seen)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, y_ref.detach(), **tol)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, **tol)


def test_float64_leaves_the_users_jax_config_alone(jax, bridge):
    before = jax.config.jax_enable_x64
    bridge.jax_op(lambda x: (x * 2,))(torch.ones(2, dtype=torch.float64))
    assert jax.config.jax_enable_x64 == before


def test_bad_arguments_are_refused_with_their_name(bridge):
    op = bridge.jax_op(lambda x: (x,), name="double")
    with pytest.raises(ValueError, match="double: argument 0 is torch.bfloat16"):
        op(torch.ones(2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="argument 0 must be a torch tensor"):
        op([1.0])


def test_the_short_names_load_the_adapters(jax):
    from lstm_bench.adapters.flax_lstm import flax_lstm  # here, not at the top: they import JAX
    from lstm_bench.adapters.jax_lstm import jax_scan

    assert get_impl("jax_scan").fn is jax_scan and get_impl("flax_lstm").fn is flax_lstm
    assert "projection" not in get_impl("flax_lstm").support.features


@pytest.mark.parametrize("name", ["jax_scan", "flax_lstm"])
def test_the_adapter_passes_checks_default_run(jax, name):
    assert assert_conforms(get_impl(name).fn, catalogue("quick"))


def test_a_wrong_gate_order_in_the_jax_layout_is_caught(jax):
    from lstm_bench.adapters.jax_lstm import jax_scan_layer  # here, not at the top: it imports JAX

    wrong = foreign_kernel(bucketed_forward(jax_scan_layer, Layout("ifog", "in_out", "one")), "jax_scan_ifog", "jax")
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(wrong, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))


def _flax_carry_swapped(x, mask, h0, c0, w_ih, w_hh, bias):
    """Flax's cell given nn.LSTM's carry order (h, c) where it takes (c, h): the bug an adapter can make."""
    import flax.linen  # here, not at the top: collecting this module must not import JAX
    import jax

    from lstm_bench.adapters.flax_lstm import cell_params

    cell = flax.linen.OptimizedLSTMCell(h0.shape[-1])
    params = {"params": cell_params(w_ih, w_hh, bias)}

    def step(carry, inputs):
        (c, h), _ = cell.apply(params, carry, inputs[0])
        return (h, c), h  # wrong: h where Flax expects c
    (h_n, c_n), hs = jax.lax.scan(step, (h0, c0), (x, mask))
    return hs, h_n, c_n


def test_flax_with_its_carry_in_nn_lstms_order_is_caught(bridge):
    wrong = foreign_kernel(bucketed_forward(bridge.jax_op(_flax_carry_swapped)), "flax_swapped", "flax")
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(wrong, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))
