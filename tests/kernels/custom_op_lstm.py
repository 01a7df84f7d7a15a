"""A correct LSTM kernel shipped as torch.library custom ops, and its broken variants.

`lstm_op`: forward and backward are two custom ops (`<LIB>::lstm_forward`,
`<LIB>::lstm_backward`), each with a fake kernel; the forward's backward is
registered with `register_autograd` and calls the backward op. One layer, one direction,
time-major, full-length sequences (features = ()), the equations of lstm_bench.core.contract
with a hand-derived BPTT (Greff et al. 2017, arXiv:1503.04069, appendix):

    a_t = x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T;  i, f, o = sigmoid, g = tanh   (B, 4H)
    c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    backward, t = T..1: dh = d_output_t + dh';  dc = dc' + dh o (1 - tanh^2 c_t)
      da = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o)]
      dW_ih += da^T x_t;  dW_hh += da^T h_{t-1};  db += sum_b da;  dx_t = da W_ih;
      dh' = da W_hh;  dc' = dc f

The broken variants each break one thing the PT2 and adversarial gates exist for; their
values are right eagerly, so only the gate meant for them can see them.
"""
from __future__ import annotations

import zlib

import torch
from torch import Tensor

from lstm_bench.adapters import module_kernel, op_kernel

# One namespace per import of this file: the tests import it as tests.kernels.custom_op_lstm and the
# suite loads it by path under another module name, and an op name can be defined only once.
LIB = f"lstm_tests_{zlib.crc32(__name__.encode()):08x}"


def _forward(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
    """(output (T,B,H), h_n (1,B,H), c_n (1,B,H), acts (T,B,4H) = [i, f, g, o] activated, cs (T+1,B,H))."""
    T = x.shape[0]
    H = w_hh.shape[1]
    xw = x @ w_ih.T + (b_ih + b_hh)
    h, c = h0[0], c0[0]
    out, acts, cs = [], [], [c]
    for t in range(T):
        a = xw[t] + h @ w_hh.T
        i, f, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.sigmoid(a[:, 3 * H:])
        g = torch.tanh(a[:, 2 * H:3 * H])
        c = f * c + i * g
        h = o * torch.tanh(c)
        out.append(h)
        acts.append(torch.cat([i, f, g, o], dim=1))
        cs.append(c)
    output = torch.stack(out)
    return output, output[-1:].clone(), c[None].clone(), torch.stack(acts), torch.stack(cs)


def _backward(d_output: Tensor, d_h_n: Tensor, d_c_n: Tensor, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
              output: Tensor, acts: Tensor, cs: Tensor):
    """(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh): the BPTT of the module docstring."""
    T, H = x.shape[0], w_hh.shape[1]
    hs = torch.cat([h0, output])  # h_0 .. h_T
    dh, dc = d_h_n[0].clone(), d_c_n[0].clone()
    dx, dw_ih, dw_hh = torch.empty_like(x), torch.zeros_like(w_ih), torch.zeros_like(w_hh)
    db = torch.zeros(4 * H, dtype=x.dtype, device=x.device)
    for t in reversed(range(T)):
        i, f, g, o = acts[t].split(H, dim=1)
        dh = dh + d_output[t]
        tc = torch.tanh(cs[t + 1])
        dc = dc + dh * o * (1 - tc * tc)
        da = torch.cat([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g * g), dh * tc * o * (1 - o)],
                       dim=1)
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ hs[t]
        db += da.sum(0)
        dx[t] = da @ w_ih
        dh = da @ w_hh
        dc = dc * f
    return dx, dh[None], dc[None], dw_ih, dw_hh, db, db.clone()


@torch.library.custom_op(f"{LIB}::lstm_backward", mutates_args=())
def lstm_backward(d_output: Tensor, d_h_n: Tensor, d_c_n: Tensor, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
                  output: Tensor, acts: Tensor, cs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                      Tensor]:
    return _backward(d_output, d_h_n, d_c_n, x, h0, w_ih, w_hh, output, acts, cs)


@lstm_backward.register_fake
def _(d_output, d_h_n, d_c_n, x, h0, w_ih, w_hh, output, acts, cs):
    H4 = w_ih.shape[0]
    return (torch.empty_like(x), torch.empty_like(h0), torch.empty_like(h0), torch.empty_like(w_ih),
            torch.empty_like(w_hh), x.new_empty(H4), x.new_empty(H4))


def _fake_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    T, B = x.shape[:2]
    H = w_hh.shape[1]
    return (x.new_empty(T, B, H), x.new_empty(1, B, H), x.new_empty(1, B, H), x.new_empty(T, B, 4 * H),
            x.new_empty(T + 1, B, H))


def _setup_context(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs
    out, _, _, acts, cs = output
    ctx.save_for_backward(x, h0, w_ih, w_hh, out, acts, cs)


def _zeros_if_none(g, like):
    return torch.zeros_like(like) if g is None else g


def _autograd_backward(ctx, d_output, d_h_n, d_c_n, _d_acts, _d_cs):
    x, h0, w_ih, w_hh, out, acts, cs = ctx.saved_tensors
    d_output, d_h_n, d_c_n = (_zeros_if_none(d_output, out), _zeros_if_none(d_h_n, h0),
                              _zeros_if_none(d_c_n, h0))
    return lstm_backward(d_output, d_h_n, d_c_n, x, h0, w_ih, w_hh, out, acts, cs)


def _define(name: str, impl, fake=_fake_forward, mutates_args=()):
    """A forward op `<LIB>::<name>` running `impl`, with `fake` (None: no fake kernel) and the autograd above."""
    op = torch.library.custom_op(f"{LIB}::{name}", mutates_args=mutates_args)(impl)
    if fake is not None:
        op.register_fake(fake)
    op.register_autograd(_autograd_backward, setup_context=_setup_context)
    return op


def lstm_forward_impl(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                      b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


lstm_forward = _define("lstm_forward", lstm_forward_impl)

# The correct kernel: `--lstm-impl tests/kernels/custom_op_lstm.py:lstm_op`.
lstm_op = op_kernel(lstm_forward, name="lstm_op", features=(), devices=("cpu", "cuda"))


# --- broken: the fake kernel ----------------------------------------------------------------

def no_fake_impl(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                 b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


def _fake_wrong_shape(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Forgets that h_n keeps the (1, B, H) state dimension: (B, H), as a hand-written meta kernel might."""
    T, B = x.shape[:2]
    H = w_hh.shape[1]
    return (x.new_empty(T, B, H), x.new_empty(B, H), x.new_empty(1, B, H), x.new_empty(T, B, 4 * H),
            x.new_empty(T + 1, B, H))


def wrong_fake_impl(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                    b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


def mutating_impl(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
                  b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Leaves the final cell state in c0 (an inference kernel's in-place state update) although
    mutates_args=() says it writes nothing: functionalization and CUDA graphs go wrong."""
    result = _forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    c0.copy_(result[2])
    return result


lstm_op_no_fake = op_kernel(_define("lstm_no_fake", no_fake_impl, fake=None), name="lstm_op_no_fake",
                            features=(), devices=("cpu",))
lstm_op_wrong_fake = op_kernel(_define("lstm_wrong_fake", wrong_fake_impl, fake=_fake_wrong_shape),
                               name="lstm_op_wrong_fake", features=(), devices=("cpu",))
lstm_op_mutates = op_kernel(_define("lstm_mutates", mutating_impl), name="lstm_op_mutates", features=(),
                            devices=("cpu",))


# --- modules ---------------------------------------------------------------------------------

class OpLSTM(torch.nn.Module):
    """A drop-in nn.LSTM (one layer, time-major) around the custom op, with nn.LSTM's parameter names."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        H = hidden_size
        self.weight_ih_l0 = torch.nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh_l0 = torch.nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih_l0 = torch.nn.Parameter(torch.empty(4 * H))
        self.bias_hh_l0 = torch.nn.Parameter(torch.empty(4 * H))

    def forward(self, x, state):
        h0, c0 = state
        out, h_n, c_n, _, _ = lstm_forward(x, h0, c0, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0,
                                           self.bias_hh_l0)
        return out, (h_n, c_n)


class GraphBreakLSTM(OpLSTM):
    """The same, with a data-dependent Python branch (a `.item()` on a tensor): a graph break
    under torch.compile, though it declares fullgraph."""

    def forward(self, x, state):
        if bool(x.abs().max().item() > 1e30):  # an overflow guard on the host: reads a tensor's value
            raise FloatingPointError("input overflow")
        return super().forward(x, state)


def _build(config):
    return OpLSTM(config.input_size, config.hidden_size)


def _build_graph_break(config):
    return GraphBreakLSTM(config.input_size, config.hidden_size)


lstm_module = module_kernel(_build, name="lstm_module", features=(), fullgraph=True, devices=("cpu", "cuda"))
module_graph_break = module_kernel(_build_graph_break, name="module_graph_break", features=(), fullgraph=True,
                                   devices=("cpu",))


class CompiledDiffersLSTM(OpLSTM):
    """Right eagerly; under torch.compile it takes a 'fast path' that drops the recurrent bias."""

    def forward(self, x, state):
        if torch.compiler.is_compiling():
            h0, c0 = state
            out, h_n, c_n, _, _ = lstm_forward(x, h0, c0, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0,
                                               self.bias_hh_l0 * 0.999)
            return out, (h_n, c_n)
        return super().forward(x, state)


module_compiled_differs = module_kernel(lambda config: CompiledDiffersLSTM(config.input_size, config.hidden_size),
                                        name="module_compiled_differs", features=(), fullgraph=True,
                                        devices=("cpu",))
