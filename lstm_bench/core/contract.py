"""The contract every BPTT implementation follows: a `Case` goes in, a `Result` comes out.

The LSTM is nn.LSTM in its whole configuration (`LSTMConfig`: layers, directions, a
projection, batch-first layout, variable lengths), without dropout between layers (its
masks are random and cannot be reproduced across backends). Hochreiter & Schmidhuber
1997, with the forget gate of Gers et al. 2000 and the projection of Sak et al. 2014;
equations as in Greff et al. 2017 (arXiv:1503.04069). Layer l, direction d, step t:

    gates = x_t @ W_ih^T + b_ih + r_{t-1} @ W_hh^T + b_hh          (B, 4H), gate order i, f, g, o
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g                                        (B, H)
    m_t = o * tanh(c_t)                                              (B, H)
    r_t = m_t @ W_hr^T with a projection (proj_size P), else m_t     (B, H_out), H_out = P or H

The reverse direction (D = 2 when bidirectional) runs the steps backwards; the input of
layer l > 0 is [r_t forward, r_t reverse] of layer l - 1, (B, D * H_out). With `lengths`
(B,) in [1, T], as nn.LSTM with pack_padded_sequence(..., enforce_sorted=False): steps
t >= L_b leave sequence b's state unchanged, its h_n and c_n are taken at its own last
step, output is zero at its padded positions and d_output there is ignored, and the
reverse direction starts at its own last step t = L_b - 1.

Shapes (nn.LSTM's): x (T, B, I), or (B, T, I) when batch_first; h0 (L*D, B, H_out), c0
(L*D, B, H); output (T, B, D*H_out), or (B, T, D*H_out); h_n, c_n like h0, c0. Weights
by nn.LSTM's own parameter names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
`bias_hh_l0`, `weight_hr_l0` with a projection, `..._reverse`, `_l1`, ...), so that
`nn.LSTM(...).load_state_dict(case.weights)` works unchanged.

The loss whose gradients every implementation returns is

    L = sum(output * d_output) + sum(h_n * d_h_n) + sum(c_n * d_c_n)

with random upstream gradients on all three outputs, so that every edge of the backward
graph carries signal (a plain sum of h_n leaves most of them untested). `Result.grads`
holds dL/d(x, h0, c0) and dL/d(every weight), by the same names.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import torch

from .devices import check_device
from .support import DTYPES, dtype_name, parse_dtype
from .values import check_int, check_positive_int

GATES = ("i", "f", "g", "o")
STATE_NAMES = ("x", "h0", "c0")


def gate_slice(gate: str, H: int) -> slice:
    """Rows of gate `gate` (one of GATES) in a (4H, ...) weight or bias, or columns of a (B, 4H) gate block."""
    return slice(GATES.index(gate) * H, (GATES.index(gate) + 1) * H)


def gate_slices(H: int) -> dict[str, slice]:
    """{"i": slice(0, H), "f": slice(H, 2H), "g": slice(2H, 3H), "o": slice(3H, 4H)}: nn.LSTM's gate order."""
    return {k: gate_slice(k, H) for k in GATES}


@dataclass(frozen=True)
class LayerNames:
    """nn.LSTM's parameter names of one layer and direction; `weight_hr` is None without a projection."""

    weight_ih: str
    weight_hh: str
    bias_ih: str
    bias_hh: str
    weight_hr: str | None


@dataclass(frozen=True)
class LSTMConfig:
    """nn.LSTM's constructor arguments (dropout excluded: it is always 0 here)."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    batch_first: bool = False

    def __post_init__(self) -> None:
        check_positive_int("input_size", self.input_size)
        check_positive_int("hidden_size", self.hidden_size)
        check_positive_int("num_layers", self.num_layers)
        check_int("proj_size", self.proj_size, 0)
        for name in ("bidirectional", "batch_first"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size (nn.LSTM's rule), got proj_size="
                             f"{self.proj_size} with hidden_size={self.hidden_size}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def h_out(self) -> int:
        """The size of h and of each direction's output: proj_size with a projection, else hidden_size."""
        return self.proj_size or self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.directions * self.h_out

    def names(self, layer: int, direction: int) -> LayerNames:
        s = f"_l{layer}" + ("_reverse" if direction else "")
        return LayerNames(f"weight_ih{s}", f"weight_hh{s}", f"bias_ih{s}", f"bias_hh{s}",
                          f"weight_hr{s}" if self.proj_size else None)

    def layers(self) -> list[tuple[int, int]]:
        """(layer, direction) in nn.LSTM's order; state index layer * D + direction in h0, c0, h_n, c_n."""
        return [(layer, d) for layer in range(self.num_layers) for d in range(self.directions)]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape by name, in nn.LSTM's order."""
        H, P = self.hidden_size, self.proj_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer, d in self.layers():
            n = self.names(layer, d)
            shapes[n.weight_ih] = (4 * H, self.layer_input_size(layer))
            shapes[n.weight_hh] = (4 * H, self.h_out)
            shapes[n.bias_ih] = (4 * H,)
            shapes[n.bias_hh] = (4 * H,)
            if P:
                shapes[n.weight_hr] = (P, H)
        return shapes

    def grad_names(self) -> tuple[str, ...]:
        """The keys of `Result.grads`: x, h0, c0, then every weight in nn.LSTM's order."""
        return STATE_NAMES + tuple(self.weight_shapes())

    def module(self, **kwargs) -> torch.nn.LSTM:
        """An nn.LSTM of this configuration (kwargs: device, dtype)."""
        return torch.nn.LSTM(self.input_size, self.hidden_size, num_layers=self.num_layers,
                             bidirectional=self.bidirectional, proj_size=self.proj_size,
                             batch_first=self.batch_first, **kwargs)

    @property
    def label(self) -> str:
        """"" for a single-layer, unidirectional, time-major LSTM without projection; else e.g. "L2-bi-P8-bf"."""
        parts = [f"L{self.num_layers}"] * (self.num_layers > 1) + ["bi"] * self.bidirectional
        parts += [f"P{self.proj_size}"] * bool(self.proj_size) + ["bf"] * self.batch_first
        return "-".join(parts)


@dataclass
class Case:
    """One problem: inputs, initial states, weights, upstream gradients of L, and optional lengths."""

    x: torch.Tensor  # (T, B, I), or (B, T, I) when batch_first
    h0: torch.Tensor  # (L*D, B, H_out)
    c0: torch.Tensor  # (L*D, B, H)
    weights: dict[str, torch.Tensor]  # nn.LSTM's parameters by name
    d_output: torch.Tensor  # the output's shape
    d_h_n: torch.Tensor  # (L*D, B, H_out)
    d_c_n: torch.Tensor  # (L*D, B, H)
    config: LSTMConfig
    lengths: torch.Tensor | None = None  # (B,) int64 on the CPU, in [1, T]; None: every sequence has T steps

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(T, B, I, H)."""
        T, B = (self.x.shape[1], self.x.shape[0]) if self.config.batch_first else self.x.shape[:2]
        return T, B, self.config.input_size, self.config.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def device(self) -> torch.device:
        return self.x.device

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every floating tensor of the case by name: x, h0, c0, the weights, the upstream gradients."""
        return {"x": self.x, "h0": self.h0, "c0": self.c0, **self.weights,
                "d_output": self.d_output, "d_h_n": self.d_h_n, "d_c_n": self.d_c_n}

    def with_tensors(self, t: dict[str, torch.Tensor]) -> "Case":
        """This case with its floating tensors replaced by `t` (same names), the config and lengths kept."""
        return dataclasses.replace(self, x=t["x"], h0=t["h0"], c0=t["c0"],
                                   weights={k: t[k] for k in self.weights},
                                   d_output=t["d_output"], d_h_n=t["d_h_n"], d_c_n=t["d_c_n"])

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "Case":
        """The same numbers in another dtype and/or on another device (lengths stay on the CPU)."""
        if device is not None:
            device = check_device(device)
        return self.with_tensors({k: v.to(dtype=dtype, device=device) for k, v in self.tensors().items()})

    def clone(self) -> "Case":
        """A copy that shares no memory with this case (to see what an implementation changed in it)."""
        lengths = None if self.lengths is None else self.lengths.clone()
        return dataclasses.replace(self.with_tensors({k: v.clone() for k, v in self.tensors().items()}),
                                   lengths=lengths)

    def modified(self, pristine: "Case") -> list[str]:
        """Names of the tensors that differ, bit for bit, from `pristine` (a `clone()` taken earlier).

        Inputs, states, weights, upstream gradients and lengths are read-only in the contract:
        a kernel that writes into them corrupts its caller's data, and every later call."""
        before = pristine.tensors()
        names = [k for k, v in self.tensors().items() if not torch.equal(v, before[k])]
        if self.lengths is not None and not torch.equal(self.lengths, pristine.lengths):
            names.append("lengths")
        return names

    def narrow_batch(self, start: int, length: int) -> "Case":
        """Sequences start..start+length-1 of the batch as a case of their own (the weights are shared)."""
        b = 0 if self.config.batch_first else 1
        t = {"x": self.x.narrow(b, start, length), "d_output": self.d_output.narrow(b, start, length),
             **{k: getattr(self, k).narrow(1, start, length) for k in ("h0", "c0", "d_h_n", "d_c_n")}}
        lengths = None if self.lengths is None else self.lengths.narrow(0, start, length)
        return dataclasses.replace(self.with_tensors({**self.tensors(), **t}), lengths=lengths)


FORWARD_TENSORS = ("output", "h_n", "c_n")  # what a forward computes; every other tensor of a Result is a gradient


@dataclass
class Result:
    """What an implementation returns for a Case.

    output, h_n, c_n in nn.LSTM's shapes, and `grads`, the gradients of L keyed by
    `case.config.grad_names()` ("x", "h0", "c0", then nn.LSTM's parameter names).
    `backend` names what actually ran (e.g. "cudnn", "onednn", "native"). `d_h` and `d_c`
    (T, B, H) are the total dL/dh_t and dL/dc_t for t = 1..T of a single-layer,
    unidirectional LSTM without projection; only the manual implementations fill them, and
    only when asked (`state_grads=True`).
    """

    output: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor
    grads: dict[str, torch.Tensor]
    backend: str = ""
    d_h: torch.Tensor | None = None
    d_c: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything compared between implementations, by name: outputs, final states, then d_<name>."""
        out = dict(zip(FORWARD_TENSORS, (self.output, self.h_n, self.c_n)))
        out.update({f"d_{k}": v for k, v in self.grads.items()})
        return out

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "Result":
        conv = lambda t: None if t is None else t.to(dtype=dtype, device=device)  # noqa: E731
        return dataclasses.replace(
            self, output=conv(self.output), h_n=conv(self.h_n), c_n=conv(self.c_n),
            grads={k: conv(v) for k, v in self.grads.items()}, d_h=conv(self.d_h), d_c=conv(self.d_c),
        )


def check_dtype(dtype: object) -> torch.dtype:
    """Accept one of `support.DTYPES` as a torch dtype or as typed (`support.parse_dtype`: "float32",
    "torch.float32", "fp16", ...); raise ValueError otherwise."""
    if isinstance(dtype, str):
        return getattr(torch, parse_dtype(dtype))
    if not isinstance(dtype, torch.dtype) or dtype_name(dtype) not in DTYPES:
        raise ValueError(f"dtype must be one of torch.{', torch.'.join(DTYPES)} (or its name), got {dtype!r}")
    return dtype


def check_lengths(lengths: object, T: int, B: int) -> torch.Tensor | None:
    """None, or `lengths` as an int64 CPU tensor (B,) with values in [1, T]; ValueError otherwise."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype != torch.int64 or lengths.device.type != "cpu" or lengths.shape != (B,):
        raise ValueError(f"lengths must be an int64 CPU tensor of shape ({B},), got {lengths.dtype} on "
                         f"{lengths.device} of shape {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths must lie in [1, T={T}], got {lengths.tolist()}")
    return lengths


def case_elements(T: int, B: int, config: LSTMConfig) -> int:
    """Elements a case holds while it is drawn: its tensors (x, d_output, states, weights) once
    in float64 and once in its dtype, as Python integers (no overflow at absurd sizes)."""
    states = config.num_layers * config.directions
    weights = sum(math.prod(shape) for shape in config.weight_shapes().values())
    tensors = (T * B * config.input_size + T * B * config.directions * config.h_out
               + 2 * states * B * (config.h_out + config.hidden_size) + weights)
    return 2 * tensors


def check_fits(T: int, B: int, config: LSTMConfig, device: torch.device) -> None:
    """ValueError, in one line, when the case alone would take more than the device's memory
    (before anything is allocated: a size typed with one digit too many is bad input, not a crash)."""
    need = case_elements(T, B, config) * 8
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise ValueError(f"a case of T={T} B={B} I={config.input_size} H={config.hidden_size} needs "
                         f"{need / 2**30:.3g} GiB for its tensors alone; this {device.type} has {have / 2**30:.3g} GiB")


def make_case(
    seq_len: int,
    batch: int,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
    batch_first: bool = False,
    lengths: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    weight_scale: float = 1.0,
    forget_bias: float | None = None,
) -> Case:
    """Draw a Case from a generator seeded with `seed`.

    Everything is drawn in float64 on the CPU, in a fixed order, then cast and moved, so a
    seed gives the same numbers on every device and dtype (and in both layouts: x and
    d_output are drawn time-major, then transposed for batch_first): every weight, in
    nn.LSTM's parameter order, ~ U(-k, k) with k = 1/sqrt(H), as nn.LSTM initialises
    them; x ~ N(0, 1); h0 ~ U(-1, 1) and c0 ~ N(0, 1) (nonzero, so their gradients are
    exercised); d_output, d_h_n, d_c_n ~ N(0, 1). A single-layer case draws the numbers it
    drew before layers existed, in the same order.

    `weight_scale` multiplies all weights and biases (10 saturates the gates).
    `forget_bias` sets the forget-gate slice of bias_ih + bias_hh of every layer and
    direction to that value (bias_ih carries it, bias_hh's slice is zeroed), as in Gers et
    al. 2000 and Jozefowicz et al. 2015. `lengths`: see the module docstring.
    """
    T, B = check_positive_int("seq_len", seq_len), check_positive_int("batch", batch)
    config = LSTMConfig(input_size, hidden_size, num_layers, bidirectional, proj_size, batch_first)
    dtype = check_dtype(dtype)
    device = check_device(device)
    lengths = check_lengths(lengths, T, B)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not math.isfinite(weight_scale):
        raise ValueError(f"weight_scale must be finite, got {weight_scale!r}")
    check_fits(T, B, config, device)

    gen = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=gen)
    H, states = config.hidden_size, config.num_layers * config.directions
    k = 1.0 / math.sqrt(H)
    uniform = lambda *shape, bound: (torch.rand(*shape, **f64) * 2 - 1) * bound  # noqa: E731
    weights = {name: uniform(*shape, bound=k) * weight_scale for name, shape in config.weight_shapes().items()}
    x = torch.randn(T, B, config.input_size, **f64)
    h0 = uniform(states, B, config.h_out, bound=1.0)
    c0 = torch.randn(states, B, H, **f64)
    d_output = torch.randn(T, B, config.directions * config.h_out, **f64)
    d_h_n = torch.randn(states, B, config.h_out, **f64)
    d_c_n = torch.randn(states, B, H, **f64)
    if forget_bias is not None:
        for layer, d in config.layers():
            names = config.names(layer, d)
            weights[names.bias_ih][gate_slice("f", H)] = forget_bias
            weights[names.bias_hh][gate_slice("f", H)] = 0.0
    if batch_first:
        x, d_output = x.transpose(0, 1).contiguous(), d_output.transpose(0, 1).contiguous()
    case = Case(x, h0, c0, weights, d_output, d_h_n, d_c_n, config, lengths)
    return case.to(dtype=dtype, device=device)


def expected_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of `case` and of its result (`output`, `h_n`, `c_n`), by name."""
    c = case.config
    T, B, I, H = case.sizes
    states, out = c.num_layers * c.directions, c.directions * c.h_out
    seq = lambda features: (B, T, features) if c.batch_first else (T, B, features)  # noqa: E731
    shapes = {"x": seq(I), "h0": (states, B, c.h_out), "c0": (states, B, H), **c.weight_shapes(),
              "d_output": seq(out), "d_h_n": (states, B, c.h_out), "d_c_n": (states, B, H)}
    return {**shapes, "output": shapes["d_output"], "h_n": shapes["h0"], "c_n": shapes["c0"]}


def check_case(case: object) -> Case:
    """Raise ValueError naming the offending field unless `case` is a consistent Case."""
    if not isinstance(case, Case):
        raise ValueError(f"case must be an lstm_bench.Case, got {type(case).__name__}")
    if not isinstance(case.config, LSTMConfig):
        raise ValueError(f"case.config must be an lstm_bench.LSTMConfig, got {type(case.config).__name__}")
    if not isinstance(case.weights, dict):
        raise ValueError(f"case.weights must be a dict of nn.LSTM's parameter names, got {type(case.weights).__name__}")
    tensors = case.tensors()
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"case.{name} must be a torch.Tensor, got {type(t).__name__}")
    if case.x.dim() != 3:
        raise ValueError(f"case.x must be 3-D ({'B, T' if case.config.batch_first else 'T, B'}, I), "
                         f"got shape {tuple(case.x.shape)}")
    T, B, I, H = case.sizes
    for name, size in (("T", T), ("B", B)):
        if size == 0:
            raise ValueError(f"case has {name} = 0; every size must be positive")
    expected = expected_shapes(case)
    wrong = sorted(set(case.weights) ^ set(case.config.weight_shapes()))
    if wrong:
        raise ValueError(f"case.weights has names {sorted(case.weights)}; for {case.config} it needs "
                         f"{list(case.config.weight_shapes())} (differing: {wrong})")
    for name, t in tensors.items():
        got = tuple(t.shape)
        if got != expected[name]:
            raise ValueError(f"case.{name} has shape {got}, expected {expected[name]} for T={T}, B={B}, "
                             f"I={I}, H={H}, {case.config}")
    dtype, device = case.x.dtype, case.x.device
    if not dtype.is_floating_point:
        raise ValueError(f"case.x must be floating point, got {dtype}")
    for name, t in tensors.items():
        if t.dtype != dtype:
            raise ValueError(f"case.{name} has dtype {t.dtype}, but case.x has {dtype}; all must match")
        if t.device != device:
            raise ValueError(f"case.{name} is on {t.device}, but case.x is on {device}; all must match")
    check_lengths(case.lengths, T, B)
    return case


def check_result(result: object, case: Case, impl: str = "?", *, gradients: bool = True) -> Result:
    """Raise ValueError unless `result` has the fields, keys, shapes, dtype and device the contract promises.

    Every tensor of a result is in the case's dtype and on its device: a kernel that
    returns bfloat16 for a float32 case has lost precision the case asked for, and one
    that returns float64 has been judged against the wrong tolerance. A kernel declared
    forward-only (`gradients=False`, `lstm_bench.core.support`) returns `grads == {}`, exactly;
    any other kernel returns every gradient of `case.config.grad_names()`."""
    if not isinstance(result, Result):
        raise ValueError(f"implementation {impl!r} returned {type(result).__name__}, expected lstm_bench.Result")
    if not isinstance(result.grads, dict):
        raise ValueError(f"implementation {impl!r} returned grads of type {type(result.grads).__name__}, "
                         f"expected a dict")
    if not gradients:
        if result.grads:
            raise ValueError(f"implementation {impl!r} is declared forward-only (gradients=False) but returned grads "
                             f"with keys {sorted(result.grads)}; a forward-only kernel returns grads={{}}")
    else:
        names = case.config.grad_names()
        missing, extra = set(names) - set(result.grads), set(result.grads) - set(names)
        if missing or extra:
            hint = (" (a forward-only kernel declares it: `my_lstm.gradients = False` or "
                    "register_impl(..., gradients=False), and returns grads={})" if not result.grads else "")
            raise ValueError(
                f"implementation {impl!r} returned grads with keys {sorted(result.grads)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}{hint}")
    shapes = expected_shapes(case)
    for name, t in result.tensors().items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"implementation {impl!r} returned {name} of type {type(t).__name__}")
        want = shapes[name[2:] if name.startswith("d_") else name]
        if tuple(t.shape) != want:
            raise ValueError(f"implementation {impl!r} returned {name} of shape {tuple(t.shape)}, expected {want}")
        if t.dtype != case.dtype or t.device != case.device:
            raise ValueError(f"implementation {impl!r} returned {name} as {t.dtype} on {t.device}; the case is "
                             f"{case.dtype} on {case.device}, and every result tensor must be too")
    return result
