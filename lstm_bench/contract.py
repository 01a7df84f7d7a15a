"""The contract every BPTT implementation follows: a `Case` goes in, a `Result` comes out.

Single-layer LSTM, time-major, in PyTorch's `nn.LSTM` parameter layout so that
weights move between all implementations unchanged (Hochreiter & Schmidhuber 1997, with the
forget gate of Gers et al. 2000; equations as in Greff et al. 2017, arXiv:1503.04069):

    gates = x_t @ weight_ih.T + bias_ih + h_{t-1} @ weight_hh.T + bias_hh   (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)          # gate order i, f, g, o
    i, f, o = sigmoid(i), sigmoid(f), sigmoid(o)
    g = tanh(g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Shapes: x (T, B, I), h0 and c0 (B, H), weight_ih (4H, I), weight_hh (4H, H),
bias_ih and bias_hh (4H,). output stacks h_1..h_T: (T, B, H).

The loss whose gradients every implementation returns is

    L = sum(output * d_output) + sum(h_n * d_h_n) + sum(c_n * d_c_n)

with random upstream gradients on all three outputs, so that every edge of the
backward graph carries signal (a plain sum of h_n leaves most of them untested).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from .devices import check_device
from .values import check_positive_int

GRAD_NAMES = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = ("i", "f", "g", "o")


def gate_slice(gate: str, H: int) -> slice:
    """Rows of gate `gate` (one of GATES) in a (4H, ...) weight or bias, or columns of a (B, 4H) gate block."""
    return slice(GATES.index(gate) * H, (GATES.index(gate) + 1) * H)


def gate_slices(H: int) -> dict[str, slice]:
    """{"i": slice(0, H), "f": slice(H, 2H), "g": slice(2H, 3H), "o": slice(3H, 4H)}: nn.LSTM's gate order."""
    return {k: gate_slice(k, H) for k in GATES}


@dataclass
class LSTMWeights:
    """Parameters in nn.LSTM layout: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,)."""

    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: torch.Tensor
    bias_hh: torch.Tensor

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "LSTMWeights":
        return LSTMWeights(*(t.to(dtype=dtype, device=device) for t in self.as_tuple()))


@dataclass
class Case:
    """One problem: inputs, initial states, weights and the upstream gradients of L."""

    x: torch.Tensor  # (T, B, I)
    h0: torch.Tensor  # (B, H)
    c0: torch.Tensor  # (B, H)
    weights: LSTMWeights
    d_output: torch.Tensor  # (T, B, H)
    d_h_n: torch.Tensor  # (B, H)
    d_c_n: torch.Tensor  # (B, H)

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(T, B, I, H)."""
        T, B, I = self.x.shape
        return T, B, I, self.h0.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def device(self) -> torch.device:
        return self.x.device

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the case by name (inputs, weights, upstream gradients)."""
        w = self.weights
        return {
            "x": self.x, "h0": self.h0, "c0": self.c0,
            "weight_ih": w.weight_ih, "weight_hh": w.weight_hh, "bias_ih": w.bias_ih, "bias_hh": w.bias_hh,
            "d_output": self.d_output, "d_h_n": self.d_h_n, "d_c_n": self.d_c_n,
        }

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> "Case":
        return cls(
            x=t["x"], h0=t["h0"], c0=t["c0"],
            weights=LSTMWeights(t["weight_ih"], t["weight_hh"], t["bias_ih"], t["bias_hh"]),
            d_output=t["d_output"], d_h_n=t["d_h_n"], d_c_n=t["d_c_n"],
        )

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "Case":
        """The same numbers in another dtype and/or on another device."""
        if device is not None:
            device = check_device(device)
        return Case.from_tensors({k: v.to(dtype=dtype, device=device) for k, v in self.tensors().items()})

    def narrow_batch(self, start: int, length: int) -> "Case":
        """Sequences start..start+length-1 of the batch as a case of their own (the weights are shared)."""
        batch_dim = {"x": 1, "d_output": 1, "h0": 0, "c0": 0, "d_h_n": 0, "d_c_n": 0}
        return Case.from_tensors({k: v.narrow(batch_dim[k], start, length) if k in batch_dim else v
                                  for k, v in self.tensors().items()})

    def clone(self) -> "Case":
        """A copy that shares no memory with this case (to see what an implementation changed in it)."""
        return Case.from_tensors({k: v.clone() for k, v in self.tensors().items()})

    def modified(self, pristine: "Case") -> list[str]:
        """Names of the tensors that differ, bit for bit, from `pristine` (a `clone()` taken earlier).

        Inputs, states, weights and upstream gradients are read-only in the contract: a
        kernel that writes into them corrupts its caller's data, and every later call."""
        before = pristine.tensors()
        return [k for k, v in self.tensors().items() if not torch.equal(v, before[k])]


@dataclass
class Result:
    """What an implementation returns for a Case.

    output (T, B, H), h_n and c_n (B, H), and `grads`, the gradients of L keyed by
    GRAD_NAMES. `backend` names what actually ran (e.g. "cudnn", "onednn", "native").
    `d_h` and `d_c` (T, B, H) are the total dL/dh_t and dL/dc_t for t = 1..T; only the
    manual implementations fill them, and only when asked (`state_grads=True`).
    """

    output: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor
    grads: dict[str, torch.Tensor]
    backend: str = ""
    d_h: torch.Tensor | None = None
    d_c: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything compared between implementations, by name: outputs, final states, then d<name>."""
        out = {"output": self.output, "h_n": self.h_n, "c_n": self.c_n}
        out.update({f"d_{k}": self.grads[k] for k in GRAD_NAMES})
        return out

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "Result":
        conv = lambda t: None if t is None else t.to(dtype=dtype, device=device)  # noqa: E731
        return dataclasses.replace(
            self, output=conv(self.output), h_n=conv(self.h_n), c_n=conv(self.c_n),
            grads={k: conv(v) for k, v in self.grads.items()}, d_h=conv(self.d_h), d_c=conv(self.d_c),
        )


def check_dtype(dtype: object) -> torch.dtype:
    """Accept a torch floating dtype or its name ("float32"); raise ValueError otherwise."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype.isidentifier() else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float32 or 'float64', got {dtype!r}")
    return dtype


def make_case(
    seq_len: int,
    batch: int,
    input_size: int,
    hidden_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    weight_scale: float = 1.0,
    forget_bias: float | None = None,
) -> Case:
    """Draw a Case from a generator seeded with `seed`.

    Everything is drawn in float64 on the CPU, in a fixed order, then cast and moved,
    so a seed gives the same numbers on every device and dtype:
    weights ~ U(-k, k) with k = 1/sqrt(H), as nn.LSTM initialises them; x ~ N(0, 1);
    h0 ~ U(-1, 1) and c0 ~ N(0, 1) (nonzero, so their gradients are exercised);
    d_output, d_h_n, d_c_n ~ N(0, 1).

    `weight_scale` multiplies all weights and biases (10 saturates the gates).
    `forget_bias` sets the forget-gate slice of bias_ih + bias_hh to that value
    (bias_ih carries it, bias_hh's slice is zeroed), as in Gers et al. 2000 and
    Jozefowicz et al. 2015.
    """
    T, B = check_positive_int("seq_len", seq_len), check_positive_int("batch", batch)
    I, H = check_positive_int("input_size", input_size), check_positive_int("hidden_size", hidden_size)
    dtype = check_dtype(dtype)
    device = check_device(device)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not math.isfinite(weight_scale):
        raise ValueError(f"weight_scale must be finite, got {weight_scale!r}")

    gen = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=gen)
    k = 1.0 / math.sqrt(H)
    uniform = lambda *shape, bound: (torch.rand(*shape, **f64) * 2 - 1) * bound  # noqa: E731
    weights = LSTMWeights(
        weight_ih=uniform(4 * H, I, bound=k) * weight_scale,
        weight_hh=uniform(4 * H, H, bound=k) * weight_scale,
        bias_ih=uniform(4 * H, bound=k) * weight_scale,
        bias_hh=uniform(4 * H, bound=k) * weight_scale,
    )
    x = torch.randn(T, B, I, **f64)
    h0 = uniform(B, H, bound=1.0)
    c0 = torch.randn(B, H, **f64)
    d_output = torch.randn(T, B, H, **f64)
    d_h_n = torch.randn(B, H, **f64)
    d_c_n = torch.randn(B, H, **f64)
    if forget_bias is not None:
        weights.bias_ih[gate_slice("f", H)] = forget_bias
        weights.bias_hh[gate_slice("f", H)] = 0.0
    case = Case(x, h0, c0, weights, d_output, d_h_n, d_c_n)
    return case.to(dtype=dtype, device=device)


def check_case(case: object) -> Case:
    """Raise ValueError naming the offending field unless `case` is a consistent Case."""
    if not isinstance(case, Case):
        raise ValueError(f"case must be an lstm_bench.Case, got {type(case).__name__}")
    tensors = case.tensors()
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"case.{name} must be a torch.Tensor, got {type(t).__name__}")
    if case.x.dim() != 3:
        raise ValueError(f"case.x must be 3-D (T, B, I), got shape {tuple(case.x.shape)}")
    if case.h0.dim() != 2:
        raise ValueError(f"case.h0 must be 2-D (B, H), got shape {tuple(case.h0.shape)}")
    T, B, I, H = case.sizes
    for name, size in (("T", T), ("B", B), ("I", I), ("H", H)):
        if size == 0:
            raise ValueError(f"case has {name} = 0; every size must be positive")
    expected = {
        "x": (T, B, I), "h0": (B, H), "c0": (B, H),
        "weight_ih": (4 * H, I), "weight_hh": (4 * H, H), "bias_ih": (4 * H,), "bias_hh": (4 * H,),
        "d_output": (T, B, H), "d_h_n": (B, H), "d_c_n": (B, H),
    }
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise ValueError(
                f"case.{name} has shape {got}, expected {shape} for T={T}, B={B}, I={I}, H={H}")
    dtype, device = case.x.dtype, case.x.device
    if not dtype.is_floating_point:
        raise ValueError(f"case.x must be floating point, got {dtype}")
    for name, t in tensors.items():
        if t.dtype != dtype:
            raise ValueError(f"case.{name} has dtype {t.dtype}, but case.x has {dtype}; all must match")
        if t.device != device:
            raise ValueError(f"case.{name} is on {t.device}, but case.x is on {device}; all must match")
    return case


def check_result(result: object, case: Case, impl: str = "?") -> Result:
    """Raise ValueError unless `result` has the fields, keys, shapes, dtype and device the contract promises.

    Every tensor of a result is in the case's dtype and on its device: a kernel that
    returns bfloat16 for a float32 case has lost precision the case asked for, and one
    that returns float64 has been judged against the wrong tolerance."""
    if not isinstance(result, Result):
        raise ValueError(f"implementation {impl!r} returned {type(result).__name__}, expected lstm_bench.Result")
    missing = set(GRAD_NAMES) - set(result.grads)
    extra = set(result.grads) - set(GRAD_NAMES)
    if missing or extra:
        raise ValueError(
            f"implementation {impl!r} returned grads with keys {sorted(result.grads)}; "
            f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    inputs = case.tensors()
    expected = {"output": case.d_output.shape, "h_n": case.h0.shape, "c_n": case.c0.shape}
    expected.update({f"d_{k}": inputs[k].shape for k in GRAD_NAMES})
    for name, t in result.tensors().items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"implementation {impl!r} returned {name} of type {type(t).__name__}")
        if t.shape != expected[name]:
            raise ValueError(
                f"implementation {impl!r} returned {name} of shape {tuple(t.shape)}, expected {tuple(expected[name])}")
        if t.dtype != case.dtype or t.device != case.device:
            raise ValueError(f"implementation {impl!r} returned {name} as {t.dtype} on {t.device}; the case is "
                             f"{case.dtype} on {case.device}, and every result tensor must be too")
    return result
