"""The TensorFlow bridge (lstm_bench.adapters.tf_bridge) and the Keras adapter: the bridge's gradients
against torch autograd on the same function, the adapter judged by the suite's assertions, and a
wrong gate order caught. Skipped without tensorflow/keras."""
from __future__ import annotations

import types

import pytest
import torch

from lstm_bench.adapters.foreign import bucketed_forward, foreign_kernel
from lstm_bench.adapters.layout import Layout
from lstm_bench.conformance.assertions import assert_agrees, assert_conforms
from lstm_bench.conformance.cases import CaseSpec, catalogue
from lstm_bench.core.registry import get_impl

# Importing TensorFlow takes 5.7 s a process (AMD EPYC): every test here is slow (.ci/run's second
# stage runs them), and the module imports it in a fixture, so that collecting it costs nothing.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bridge() -> types.ModuleType:
    """lstm_bench.adapters.tf_bridge, which loads TensorFlow after Triton where Triton is installed."""
    return pytest.importorskip("lstm_bench.adapters.tf_bridge", reason="tensorflow is not installed")


@pytest.fixture(scope="module")
def keras(bridge) -> types.ModuleType:
    """lstm_bench.adapters.keras_lstm."""
    pytest.importorskip("keras")
    return pytest.importorskip("lstm_bench.adapters.keras_lstm")


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_the_bridge_gives_torchs_gradients_on_the_same_function(bridge, dtype):
    tf, tf_op = bridge.tf, bridge.tf_op
    torch.manual_seed(0)
    # y = tanh(x @ w) * m, s = sum(x^2), and an output that does not depend on w (its gradient is zero).
    op = tf_op(lambda x, w, m: (tf.tanh(x @ w) * tf.cast(m, x.dtype), tf.reduce_sum(x * x), 3 * x))
    x = torch.randn(3, 4, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    m = torch.tensor([[True, False, True, True, False]] * 3)
    y, s, z = op(x, w, m)
    assert y.dtype == dtype
    d_y, d_s, d_z = torch.randn(3, 5, dtype=dtype), torch.tensor(0.5, dtype=dtype), torch.randn(3, 4, dtype=dtype)
    got = torch.autograd.grad((y, s, z), (x, w), (d_y, d_s, d_z))
    want = torch.autograd.grad((torch.tanh(x @ w) * m, (x * x).sum(), 3 * x), (x, w), (d_y, d_s, d_z))
    # float32: the framework's tanh may differ from torch's by ulps (a gradient 1.6e-6 apart was seen)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, **tol)
    (d_w,) = torch.autograd.grad(tf_op(lambda x, w: (x * 2, w))(x, w)[0], w, torch.ones(3, 4, dtype=dtype),
                                 allow_unused=True)
    assert d_w is not None and not d_w.any()


def test_the_short_name_loads_the_adapter(keras):
    assert get_impl("keras_lstm").fn is keras.keras_lstm
    assert "projection" not in get_impl("keras_lstm").support.features


def test_the_adapter_passes_checks_default_run(keras):
    assert assert_conforms(keras.keras_lstm, catalogue("quick"))


def test_a_wrong_gate_order_in_the_keras_layout_is_caught(keras):
    # Keras' c is nn.LSTM's g; reading its i, f, c, o as i, c, f, o puts the cell input in the forget gate.
    wrong = foreign_kernel(bucketed_forward(keras.keras_layer_fn, Layout("icfo", "in_out", "one"), bucketed=False),
                           "keras_icfo", "keras")
    with pytest.raises(AssertionError, match="FAIL"):
        assert_agrees(wrong, CaseSpec(T=5, B=2, I=3, H=4, dtype="float64"))
