"""The recurrent layers the flow analysis understands, their seeded construction, and the
RNN and GRU steps written out.

Every model is a PyTorch module: `nn.RNN` (tanh or relu), `nn.GRU`, `nn.LSTM`. For RNN and
GRU the analysis runs its own step loop with the module's layer-0 weights, so that every
hidden state h_t is a node of the graph and dL/dh_t can be read off it; for the LSTM the
manual BPTT implementations of `lstm_bench.impls` compute dL/dh_t and dL/dc_t. Equations in
PyTorch's conventions (gate orders as in its parameter layout):

    RNN:  h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    GRU:  r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)      gate order r, z, n
          z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
          n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}
    LSTM: as in lstm_bench.core.contract (gate order i, f, g, o)
"""
from __future__ import annotations

import math

import torch
from torch import nn

RECURRENT = (nn.RNNBase, nn.RNNCellBase)

# One seed, independent random streams: a model's weights come from a generator seeded with
# `seed` (make_model), its inputs from seed + X_SEED_OFFSET (study.inputs,
# memory_length.measure_effective_memory) and chrono biases from seed + CHRONO_SEED_OFFSET
# (init.chrono_init_). Distinct offsets, far apart, so that seeds seed..seed+N-1 of one
# stream never meet another stream's for any N below a million.
X_SEED_OFFSET = 1_000_003
CHRONO_SEED_OFFSET = 2_000_006
KINDS = ("RNN", "GRU", "LSTM")


def recurrent_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every RNN/GRU/LSTM layer or cell in `model`; ValueError if none."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found = [(name or type(m).__name__, m) for name, m in model.named_modules() if isinstance(m, RECURRENT)]
    if not found:
        raise ValueError(
            f"model {type(model).__name__} has no recurrent layers: expected at least one nn.RNN, nn.GRU, "
            f"nn.LSTM or their cells, got only {sorted({type(m).__name__ for m in model.modules()})}")
    return found


def check_single_layer(model: object) -> nn.RNNBase:
    """`model` as a single-layer, one-direction nn.RNN/GRU/LSTM (what the step loop supports)."""
    if not isinstance(model, (nn.RNN, nn.GRU, nn.LSTM)):
        raise ValueError(f"model must be an nn.RNN, nn.GRU or nn.LSTM, got {type(model).__name__}")
    if model.num_layers != 1 or model.bidirectional or getattr(model, "proj_size", 0):
        raise ValueError(
            f"model must have num_layers=1, bidirectional=False and no proj_size, got num_layers="
            f"{model.num_layers}, bidirectional={model.bidirectional}, proj_size={getattr(model, 'proj_size', 0)}")
    return model


def kind_of(model: nn.RNNBase) -> str:
    """"RNN", "GRU" or "LSTM"."""
    return "LSTM" if isinstance(model, nn.LSTM) else "GRU" if isinstance(model, nn.GRU) else "RNN"


def layer_weights(model: nn.RNNBase, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Layer 0's (weight_ih, weight_hh, bias_ih, bias_hh) with the dtype/device of `like`; zero biases if bias=False."""
    w_ih, w_hh = model.weight_ih_l0, model.weight_hh_l0
    if model.bias:
        b_ih, b_hh = model.bias_ih_l0, model.bias_hh_l0
    else:
        b_ih = b_hh = torch.zeros(w_ih.shape[0])
    return tuple(t.detach().to(dtype=like.dtype, device=like.device) for t in (w_ih, w_hh, b_ih, b_hh))


def make_model(kind: str, input_size: int, hidden_size: int, *, seed: int = 0,
               dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.RNNBase:
    """A one-layer `kind` module with PyTorch's default init, U(-1/sqrt(H), 1/sqrt(H)) for every
    weight and bias, drawn from a generator seeded with `seed` (deterministic, global RNG untouched;
    the weights' stream: inputs and chrono biases of the same seed use the offsets above)."""
    modules = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}
    if kind not in modules:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    # Built on the meta device, so that construction draws nothing from the global RNG.
    model = modules[kind](input_size, hidden_size, dtype=torch.float64, device="meta").to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    k = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in model.parameters():  # fixed order: weight_ih, weight_hh, bias_ih, bias_hh
            p.copy_((torch.rand(p.shape, dtype=torch.float64, generator=gen) * 2 - 1) * k)
    return model.to(dtype=dtype, device=device)


def rnn_step(x_t, h, w_ih, w_hh, b_ih, b_hh, nonlinearity: str = "tanh"):
    """One Elman step: (B, I), (B, H) -> (B, H)."""
    z = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)


def gru_step(x_t, h, w_ih, w_hh, b_ih, b_hh):
    """One GRU step in PyTorch's form: (B, I), (B, H) -> (B, H)."""
    xr, xz, xn = (x_t @ w_ih.T + b_ih).chunk(3, dim=1)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h
