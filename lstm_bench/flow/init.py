"""Forget-gate initialisations for `nn.LSTM` / `nn.LSTMCell`, in PyTorch's parameter layout.

PyTorch adds two bias vectors, bias_ih + bias_hh, each (4H,) in gate order i, f, g, o.
The helpers set the *sum*: the value goes into bias_ih and bias_hh's slice is zeroed,
so a bias is counted once (as `lstm_bench.core.contract.make_case(forget_bias=...)` does).

- constant forget bias b_f (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1):
  f_t = sigmoid(... + b_f) starts near sigmoid(b_f), 0.73 for b_f = 1.
- chrono initialisation (Tallec & Ollivier 2018, arXiv:1804.11188): per unit
  b_f ~ log(U[1, T_max - 1]) and b_i = -b_f, so that the units' characteristic
  forgetting times 1 / (1 - f) spread over [1, T_max] for the dependency range T_max.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core.contract import gate_slice
from .models import CHRONO_SEED_OFFSET

INITS = ("pytorch", "bias 0", "bias 1", "bias 2", "chrono")


def _lstm_biases(lstm: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(bias_ih, bias_hh) of every layer and direction of an nn.LSTM or nn.LSTMCell."""
    if isinstance(lstm, nn.LSTMCell):
        pairs = [(lstm.bias_ih, lstm.bias_hh)]
    elif isinstance(lstm, nn.LSTM):
        suffixes = [f"_l{k}{d}" for k in range(lstm.num_layers) for d in ([""] + ["_reverse"] * lstm.bidirectional)]
        pairs = [(getattr(lstm, "bias_ih" + s, None), getattr(lstm, "bias_hh" + s, None)) for s in suffixes]
    else:
        raise ValueError(f"expected an nn.LSTM or nn.LSTMCell, got {type(lstm).__name__}")
    if not lstm.bias or any(b is None for pair in pairs for b in pair):
        raise ValueError(f"{type(lstm).__name__} was built with bias=False: there is no forget-gate bias to set")
    return pairs


def set_forget_bias_(lstm: nn.Module, value: float) -> nn.Module:
    """Set bias_ih + bias_hh of the forget gate to `value` in every layer (in place); returns `lstm`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"forget bias must be a finite number, got {value!r}")
    H = lstm.hidden_size
    with torch.no_grad():
        for b_ih, b_hh in _lstm_biases(lstm):
            b_ih[gate_slice("f", H)] = value
            b_hh[gate_slice("f", H)] = 0.0
    return lstm


def chrono_init_(lstm: nn.Module, t_max: float, *, seed: int = 0) -> nn.Module:
    """Chrono initialisation (in place): b_f = log(u), b_i = -log(u), u ~ U[1, t_max - 1] per unit,
    drawn from a generator seeded with seed + models.CHRONO_SEED_OFFSET (its own stream, so that
    chrono_init_(make_model(..., seed=s), seed=s) draws u independently of the weights); returns
    `lstm`. Needs t_max >= 2."""
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not math.isfinite(t_max) or t_max < 2:
        raise ValueError(f"t_max must be a number >= 2 (the longest dependency, in steps), got {t_max!r}")
    H = lstm.hidden_size
    gen = torch.Generator().manual_seed(seed + CHRONO_SEED_OFFSET)
    with torch.no_grad():
        for b_ih, b_hh in _lstm_biases(lstm):
            u = 1 + torch.rand(H, dtype=torch.float64, generator=gen) * (t_max - 2)
            b_f = torch.log(u).to(b_ih)
            b_ih[gate_slice("f", H)] = b_f
            b_ih[gate_slice("i", H)] = -b_f
            b_hh[gate_slice("i", H)] = 0.0
            b_hh[gate_slice("f", H)] = 0.0
    return lstm


def apply_init_(lstm: nn.Module, init: str, *, t_max: float | None = None, seed: int = 0) -> nn.Module:
    """Apply one of INITS by name: "pytorch" (leave as is), "bias 0/1/2", "chrono" (needs t_max)."""
    if init == "pytorch":
        return lstm
    if init.startswith("bias ") and init in INITS:
        return set_forget_bias_(lstm, float(init.split()[1]))
    if init == "chrono":
        if t_max is None:
            raise ValueError("chrono initialisation needs t_max, the longest dependency in steps")
        return chrono_init_(lstm, t_max, seed=seed)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")
