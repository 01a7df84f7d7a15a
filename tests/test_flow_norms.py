"""Per-step dL/dh_t, dL/dc_t, dL/dx_t: the manual BPTT implementations against autograd on the same case.

The autograd side is written here from the contract's equations, with retain_grad on
every hidden and cell state, independently of lstm_bench's code."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from lstm_bench import make_case
from lstm_bench.flow.models import make_model
from lstm_bench.flow.norms import lstm_case, step_gradients
from lstm_bench.impls import reference, vectorised

T, B, I, H = 7, 3, 4, 5


def _autograd_states(case):
    """Total dL/dh_t, dL/dc_t (T, B, H) and dL/dx via retain_grad on every state."""
    w = case.weights
    x = case.x.clone().requires_grad_()
    h, c = case.h0[0], case.c0[0]
    hs, cs = [], []
    for t in range(x.shape[0]):
        z = x[t] @ w["weight_ih_l0"].T + w["bias_ih_l0"] + h @ w["weight_hh_l0"].T + w["bias_hh_l0"]
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        h.retain_grad()
        c.retain_grad()
        hs.append(h)
        cs.append(c)
    L = (torch.stack(hs) * case.d_output).sum() + (h * case.d_h_n).sum() + (c * case.d_c_n).sum()
    L.backward()
    return torch.stack([t.grad for t in hs]), torch.stack([t.grad for t in cs]), x.grad


def _last_step_case(seed=0):
    case = make_case(T, B, I, H, dtype=torch.float64, seed=seed, forget_bias=1.0)
    d_output = torch.zeros_like(case.d_output)
    d_output[-1] = torch.randn(B, H, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return dataclasses.replace(case, d_output=d_output, d_h_n=torch.zeros_like(case.d_h_n),
                               d_c_n=torch.zeros_like(case.d_c_n))


@pytest.mark.parametrize("run", [reference.run, vectorised.run], ids=["reference", "vectorised"])
@pytest.mark.parametrize("which", ["last", "full"])
def test_manual_state_grads_equal_autograd(run, which):
    case = _last_step_case() if which == "last" else make_case(T, B, I, H, dtype=torch.float64, seed=3)
    d_h, d_c, d_x = _autograd_states(case)
    result = run(case, state_grads=True)
    for name, ours, truth in (("d_h", result.d_h, d_h), ("d_c", result.d_c, d_c), ("x", result.grads["x"], d_x)):
        assert ours.shape == truth.shape == ((T, B, I) if name == "x" else (T, B, H))
        assert torch.allclose(ours, truth, rtol=1e-10, atol=1e-12), (name, (ours - truth).abs().max())
    if which == "last":  # before the loss step only the recurrence carries gradient, and it still is nonzero
        assert float(d_c[0].abs().max()) > 0


def test_step_gradients_of_an_lstm_module():
    model = make_model("LSTM", I, H, seed=2)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = step_gradients(model, x, loss="every")
    d_h, d_c, d_x = _autograd_states(lstm_case(model, x, "every"))
    assert torch.allclose(grads.dh, d_h, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grads.dc, d_c, rtol=1e-10, atol=1e-12)
    # and against nn.LSTM itself, for the input gradient of the loss on the last output
    xx = x.clone().requires_grad_()
    model(xx)[0][-1].sum().backward()
    assert torch.allclose(step_gradients(model, x, loss="last").dx, xx.grad, rtol=1e-10, atol=1e-12)
    assert set(grads.norms()) == {"x", "h", "c"} and grads.norms()["c"].shape == (T, B)


@pytest.mark.parametrize("kind", ["RNN", "GRU"])
def test_step_gradients_of_rnn_and_gru_match_the_module(kind):
    model = make_model(kind, I, H, seed=3)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xx = x.clone().requires_grad_()
    out, _ = model(xx)
    out.sum().backward()  # loss on every step
    grads = step_gradients(model, x, loss="every")
    assert torch.allclose(grads.dx, xx.grad, rtol=1e-10, atol=1e-12)
    assert grads.dc is None
    # at the last step the total dL/dh_T is the upstream gradient alone: ones
    assert torch.allclose(grads.dh[-1], torch.ones(B, H, dtype=torch.float64))


def test_step_gradients_rejects_unsupported_models():
    x = torch.zeros(T, B, I, dtype=torch.float64)
    with pytest.raises(ValueError, match="nn.RNN, nn.GRU or nn.LSTM"):
        step_gradients(nn.Linear(I, H), x)
    with pytest.raises(ValueError, match="num_layers=1"):
        step_gradients(nn.LSTM(I, H, num_layers=2), x)
    with pytest.raises(ValueError, match="loss"):
        step_gradients(make_model("RNN", I, H), x, loss="first")
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        step_gradients(make_model("RNN", I, H), torch.zeros(T, B, I + 1))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_step_gradients_on_cuda_match_cpu(kind):
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available: torch.cuda.is_available() is False on this machine")
    model = make_model(kind, I, H, seed=4)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cpu = step_gradients(model, x, loss="every")
    gpu = step_gradients(model.to("cuda"), x.to("cuda"), loss="every")
    for a, b in ((cpu.dx, gpu.dx), (cpu.dh, gpu.dh)):
        assert b.device.type == "cuda" and torch.allclose(a, b.cpu(), rtol=1e-9, atol=1e-12)
