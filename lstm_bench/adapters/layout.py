"""Another library's LSTM layout from nn.LSTM's, with differentiable torch ops.

Every library computes the same LSTM (lstm_bench.core.contract) and lays it out its own way:

    gate order      nn.LSTM, cuDNN, Keras: i, f, g, o      ONNX's LSTM operator: i, o, f, c
                    (the cell input g is called c in ONNX, z in FlashRNN: "iofc", "ifzo" are accepted)
    weights         nn.LSTM: W_ih (4H, I), W_hh (4H, H_out): gates = x @ W_ih^T ...   "out_in"
                    Keras, Flax, JAX code: kernel (I, 4H), recurrent kernel (H, 4H): gates = x @ W ...   "in_out"
    bias            nn.LSTM, cuDNN, ONNX: two, b_ih and b_hh, added                 "two"
                    Keras, Flax, FlashRNN: one, b = b_ih + b_hh                      "one"
    directions      nn.LSTM: one tensor per (layer, direction); ONNX: stacked, W (D, 4H, I)
    state           nn.LSTM: h0 (L * D, B, H_out), layer l direction d at index l * D + d
    sequence        nn.LSTM: time-major (T, B, I) unless batch_first; with lengths, outputs are zero
                    and d_output is ignored at padded steps t >= L_b, h_n and c_n are taken at each
                    sequence's own last step, and the reverse direction starts at t = L_b - 1

`Layout(gate_order, weights, bias).layer(case.weights, config, layer, direction)` converts one
layer's parameters. The conversions are torch ops (slices, cat, transpose, add), so a kernel that
runs the other library on the converted tensors inside autograd gets its gradients back by
nn.LSTM's names with nothing more to write (`lstm_bench.adapters.autodiff`); `Layout.grads_back`
is the same map's adjoint, for a kernel whose library returns gradients in its own layout. The
sequence helpers (`time_major`, `mask_padded`, `at_own_last_step`, `reverse_within_lengths`) give
nn.LSTM's semantics to a library that lacks them; `stack_layers` assembles them into nn.LSTM's whole
configuration around a library's one layer and one direction.

    onnx = Layout("iofc")                                # ONNX's gate order, nn.LSTM's orientation, two biases
    w = onnx.layer(case.weights, case.config, 0, 0)      # LayerWeights(w_ih (4H, I), w_hh, b_ih, b_hh, w_hr)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..core.contract import GATES, LSTMConfig, gate_slice

# The letters other libraries use for the cell input g (ONNX: c, FlashRNN: z).
GATE_ALIASES = {"c": "g", "z": "g"}
WEIGHTS = ("out_in", "in_out")
BIASES = ("two", "one")


def gate_order(order: str) -> tuple[str, ...]:
    """("i", "o", "f", "g") for "iofc": four distinct gates of GATES, aliases c and z read as g;
    ValueError naming what was wrong otherwise."""
    gates = tuple(GATE_ALIASES.get(ch, ch) for ch in order.strip().lower())
    if sorted(gates) != sorted(GATES):
        raise ValueError(f"gate order {order!r} must name each of i, f, g (or c, z), o once, e.g. 'ifgo' (nn.LSTM's) "
                         f"or 'iofc' (ONNX's)")
    return gates


def to_gate_order(t: torch.Tensor, order: str, dim: int = 0) -> torch.Tensor:
    """`t`, holding nn.LSTM's four gate blocks (i, f, g, o) along `dim` (size 4H), with the blocks in `order`."""
    H = t.shape[dim] // 4
    return torch.cat([t.narrow(dim, gate_slice(k, H).start, H) for k in gate_order(order)], dim)


def from_gate_order(t: torch.Tensor, order: str, dim: int = 0) -> torch.Tensor:
    """The inverse of `to_gate_order`: blocks in `order` along `dim` back to nn.LSTM's i, f, g, o."""
    H, gates = t.shape[dim] // 4, gate_order(order)
    return torch.cat([t.narrow(dim, gates.index(k) * H, H) for k in GATES], dim)


@dataclass(frozen=True)
class LayerWeights:
    """One layer and direction's parameters in a library's layout. `b_hh` is None with one fused bias
    (then `b_ih` holds b_ih + b_hh), `w_hr` (P, H) or its transpose is None without a projection."""

    w_ih: torch.Tensor
    w_hh: torch.Tensor
    b_ih: torch.Tensor
    b_hh: torch.Tensor | None
    w_hr: torch.Tensor | None

    @property
    def bias(self) -> torch.Tensor:
        """The one bias the gates get: b_ih + b_hh (4H,)."""
        return self.b_ih if self.b_hh is None else self.b_ih + self.b_hh


@dataclass(frozen=True)
class Layout:
    """How a library lays out one LSTM layer's parameters (module docstring): `gate_order` (4H rows or
    columns), `weights` "out_in" (nn.LSTM's (4H, I)) or "in_out" ((I, 4H)), `bias` "two" or "one"."""

    gate_order: str = "ifgo"
    weights: str = "out_in"
    bias: str = "two"

    def __post_init__(self) -> None:
        gate_order(self.gate_order)
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.bias not in BIASES:
            raise ValueError(f"bias must be one of {', '.join(BIASES)}, got {self.bias!r}")

    def convert(self, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor,
                w_hr: torch.Tensor | None = None) -> LayerWeights:
        """nn.LSTM's (w_ih (4H, I), w_hh (4H, H_out), b_ih (4H,), b_hh (4H,), w_hr (P, H) or None) in this layout."""
        w_ih, w_hh = to_gate_order(w_ih, self.gate_order), to_gate_order(w_hh, self.gate_order)
        b_ih, b_hh = to_gate_order(b_ih, self.gate_order), to_gate_order(b_hh, self.gate_order)
        if self.weights == "in_out":
            w_ih, w_hh = w_ih.t(), w_hh.t()
            w_hr = None if w_hr is None else w_hr.t()
        if self.bias == "one":
            b_ih, b_hh = b_ih + b_hh, None
        return LayerWeights(w_ih, w_hh, b_ih, b_hh, w_hr)

    def layer(self, weights: dict[str, torch.Tensor], config: LSTMConfig, layer: int,
              direction: int = 0) -> LayerWeights:
        """Layer `layer`, direction `direction` of nn.LSTM's `weights` (by its parameter names) in this layout."""
        n = config.names(layer, direction)
        return self.convert(weights[n.weight_ih], weights[n.weight_hh], weights[n.bias_ih], weights[n.bias_hh],
                            weights[n.weight_hr] if n.weight_hr else None)

    def stacked(self, weights: dict[str, torch.Tensor], config: LSTMConfig, layer: int) -> LayerWeights:
        """Layer `layer`'s directions stacked on a new leading dim (D, ...), as ONNX's LSTM operator takes them."""
        per = [self.layer(weights, config, layer, d) for d in range(config.directions)]
        stack = lambda name: None if getattr(per[0], name) is None else torch.stack([getattr(w, name) for w in per])  # noqa: E731
        return LayerWeights(stack("w_ih"), stack("w_hh"), stack("b_ih"), stack("b_hh"), stack("w_hr"))

    def grads_back(self, grads: LayerWeights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                        torch.Tensor | None]:
        """Gradients in this layout back to nn.LSTM's (d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr): the adjoint of
        `convert` (a gate permutation's inverse, a transpose's transpose, and a fused bias b = b_ih + b_hh
        giving d_b_ih = d_b_hh = d_b)."""
        d_w_ih, d_w_hh, d_w_hr = grads.w_ih, grads.w_hh, grads.w_hr
        if self.weights == "in_out":
            d_w_ih, d_w_hh = d_w_ih.t(), d_w_hh.t()
            d_w_hr = None if d_w_hr is None else d_w_hr.t()
        d_b_ih = grads.b_ih
        d_b_hh = d_b_ih if self.bias == "one" else grads.b_hh
        back = lambda t: from_gate_order(t, self.gate_order)  # noqa: E731
        return back(d_w_ih), back(d_w_hh), back(d_b_ih), back(d_b_hh), d_w_hr


def state_index(config: LSTMConfig, layer: int, direction: int = 0) -> int:
    """Where layer `layer`, direction `direction` sits in h0, c0, h_n, c_n (L * D, B, H): layer * D + direction."""
    return layer * config.directions + direction


def time_major(x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """(T, B, ...) from x in nn.LSTM's layout, (B, T, ...) when batch_first; `time_major(., batch_first)` also
    turns a time-major result back (the swap is its own inverse)."""
    return x.transpose(0, 1) if batch_first else x


def step_mask(lengths: torch.Tensor, T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, B, 1) bool: True at the steps t < L_b that sequence b has."""
    steps = torch.arange(T, device=device).unsqueeze(1)
    return (steps < lengths.to(device).unsqueeze(0)).unsqueeze(-1)


def mask_padded(output: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`output` (T, B, F) with the padded steps t >= L_b zeroed, as nn.LSTM's unpacked output is (and so
    d_output there reaches nothing: the product is differentiable)."""
    if lengths is None:
        return output
    return output * step_mask(lengths, output.shape[0], output.device).to(output.dtype)


def at_own_last_step(states: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, F): `states` (T, B, F) at each sequence's own last step t = L_b - 1 (t = T - 1 without lengths)."""
    if lengths is None:
        return states[-1]
    index = (lengths.to(states.device) - 1).view(1, -1, 1).expand(1, *states.shape[1:])
    return states.gather(0, index).squeeze(0)


def reverse_within_lengths(seq: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`seq` (T, B, ...) with each sequence's first L_b steps reversed and its padding left in place:
    how a library that runs only forwards computes nn.LSTM's reverse direction (run it on this,
    then reverse its outputs the same way). Its own inverse."""
    T = seq.shape[0]
    if lengths is None:
        return seq.flip(0)
    t = torch.arange(T, device=seq.device).unsqueeze(1)
    L = lengths.to(seq.device).unsqueeze(0)
    index = torch.where(t < L, L - 1 - t, t)  # (T, B): step t of the result is step L_b - 1 - t of the input
    index = index.view(T, -1, *([1] * (seq.dim() - 2))).expand_as(seq)
    return seq.gather(0, index)


# One layer, one direction of a library: (seq (T, B, In), h0 (B, H_out), c0 (B, H), its weights, lengths (B,) or
# None) -> (hs (T, B, H_out) at every step, h_n (B, H_out), c_n (B, H) at each sequence's own last step).
LayerFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, LayerWeights, "torch.Tensor | None"],
                   tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def stack_layers(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, weights: dict[str, torch.Tensor],
                 config: LSTMConfig, lengths: torch.Tensor | None, layout: Layout,
                 layer: LayerFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """nn.LSTM's (output, h_n, c_n) from a library's one forward layer `layer` (LayerFn), given each layer and
    direction's weights in `layout`: layers stacked (layer l + 1 reads layer l's masked output), the reverse
    direction run forwards on `reverse_within_lengths(seq)` and its outputs reversed back, directions
    concatenated on the last dim, padded steps zeroed (`mask_padded`), batch_first by `time_major`;
    h_n and c_n (L * D, B, .) at `state_index`. x (T, B, I) or (B, T, I); h0, c0 (L * D, B, .)."""
    inputs = time_major(x, config.batch_first)  # (T, B, I)
    h_n, c_n = [], []
    for l in range(config.num_layers):
        outputs = []
        for d in range(config.directions):
            k = state_index(config, l, d)
            seq = reverse_within_lengths(inputs, lengths) if d else inputs
            hs, h_last, c_last = layer(seq, h0[k], c0[k], layout.layer(weights, config, l, d), lengths)
            outputs.append(reverse_within_lengths(hs, lengths) if d else hs)
            h_n.append(h_last)
            c_n.append(c_last)
        inputs = mask_padded(torch.cat(outputs, -1), lengths)
    return time_major(inputs, config.batch_first), torch.stack(h_n), torch.stack(c_n)


def layered_forward(layer: LayerFn, layout: Layout):
    """The forward (x, h0, c0, weights, case) -> (output, h_n, c_n) that `autodiff.autograd_kernel` takes, of a
    library's one forward `layer` in `layout`: `stack_layers` on the case's configuration and lengths."""
    def forward(x, h0, c0, weights, case):
        return stack_layers(x, h0, c0, weights, case.config, case.lengths, layout, layer)
    forward.__wrapped__ = layer  # the kernel's source (registry.source_of) is the library layer's file, not this one
    return forward


__all__ = ["Layout", "LayerWeights", "gate_order", "to_gate_order", "from_gate_order", "state_index", "time_major",
           "step_mask", "mask_padded", "at_own_last_step", "reverse_within_lengths", "LayerFn", "stack_layers",
           "layered_forward"]
