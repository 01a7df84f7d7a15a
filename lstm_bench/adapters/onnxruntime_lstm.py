"""ONNX Runtime's LSTM operator as a forward-only kernel (`onnxruntime_lstm`): an inference engine,
judged on output, h_n and c_n (`gradients = False`, docs/conformance.md).

Tested with onnxruntime 1.32.0 and onnx 1.23.2 (CPUExecutionProvider), torch 2.13.0. Install:
`pip install "lstm-bench[onnxruntime]"`; without it the short name `onnxruntime` skips every case
and point with that line as the reason.

The graph is built with the `onnx` package's helpers, one `LSTM` node (ONNX operator spec, opset 14:
https://onnx.ai/onnx/operators/onnx__LSTM.html) per layer:

    X (T, B, In)   W (D, 4H, In)   R (D, 4H, H)   B (D, 8H) = [Wb, Rb]   sequence_lens (B,) int32
    initial_h, initial_c (D, B, H)                 -> Y (T, D, B, H), Y_h, Y_c (D, B, H)
    gates  i, o, f, c (ONNX's order; nn.LSTM's is i, f, g, o)       direction "forward" or "bidirectional"

and a layer's Y, transposed to (T, B, D, H) and reshaped to (T, B, D·H), is the next layer's X.
The weights and states are inputs of the graph, not initialisers, with T and B symbolic, so one
InferenceSession serves every case of a configuration (layers, directions, I, H) and dtype; it is
built once per process (`_session`).

What it papers over, so that the result means what nn.LSTM's does (lstm_bench.core.contract):

- the layout: gate order i, f, g, o -> i, o, f, c, both directions stacked on a leading dim, the two
  biases concatenated (`lstm_bench.adapters.layout.Layout("iofc").stacked`);
- batch_first: a transpose on the way in and out (the operator's `layout = 1` attribute is not
  used: ONNX Runtime 1.32's CPU kernel refuses it, "Batchwise recurrent operations (layout == 1)
  are not supported");
- lengths: `sequence_lens` holds them (T for every sequence without lengths). ONNX Runtime leaves
  Y at a sequence's padded steps t >= L_b at zero, as nn.LSTM's unpacked output is, and returns
  Y_h, Y_c at each sequence's own last step, the reverse direction starting at t = L_b - 1; the
  output is masked at padded steps anyway (`mask_padded`), so that a runtime that left other
  values there is still read as nn.LSTM;
- no projection (the operator has none; declared, so those cases skip) and no peepholes (input P
  omitted); dropout does not exist at inference.

What it cannot paper over: MLAS, ONNX Runtime's CPU math library, evaluates σ and tanh with
approximations accurate in absolute terms (about 5e-8), not relative ones: σ(-17) = 8.9e-8 (exact
4.1e-8), σ(x) = 0 for x <= -18. So the kernel declares `approximate_activations` (the policy's
fast-math floor, as for cuDNN), and a tensor whose every element is tiny still shows it: on 200
random cases of the suite's strategy (`lstm_bench.conformance.test_random.case_specs`, hypothesis
seed 7) 4 failed, all with T = B = H = 1 and a saturated output gate, the worst at 1.0e4 x the bound
(output 0 where nn.LSTM gives 1.9e-9); every case of the catalogue passes (`lstm-bench check
--impl onnxruntime --depth nightly`: 35 cases, worst err/bound 0.12).

Declared: float32 only (ONNX Runtime 1.32's CPU provider loads a float64 LSTM graph but fails
running it: "LSTM operator does not support double yet"), CPU only (the CUDA provider is another
package, onnxruntime-gpu), and features layers, bidirectional, batch_first, lengths.
"""
from __future__ import annotations

import functools

import numpy as np
# The optional extra: this module is imported only when both are installed (core.registry.SHIPPED_ADAPTERS).
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from ..core.contract import Case, LSTMConfig, Result
from .layout import Layout, mask_padded, time_major

ONNX = Layout("iofc")  # the operator's gate order; nn.LSTM's orientation (4H, In) and two biases
OPSET = 14
ONNX_TYPES = {torch.float32: TensorProto.FLOAT, torch.float64: TensorProto.DOUBLE}


def lstm_graph(config: LSTMConfig, dtype: torch.dtype) -> onnx.ModelProto:
    """The ONNX model of nn.LSTM's `config` (no projection): inputs X (T, B, I), then per layer l
    W_l, R_l, B_l, h0_l, c0_l, and sequence_lens (B,); outputs Y (T, B, D·H), Y_h_l, Y_c_l (D, B, H)."""
    if config.proj_size:
        raise ValueError("the ONNX LSTM operator has no projection (proj_size must be 0)")
    elem, D, H = ONNX_TYPES[dtype], config.directions, config.hidden_size
    tensor = lambda name, *shape: helper.make_tensor_value_info(name, elem, list(shape))  # noqa: E731
    inputs = [tensor("X", "T", "B", config.input_size),
              helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"])]
    outputs, nodes, x = [], [], "X"
    for layer in range(config.num_layers):
        I_l = config.layer_input_size(layer)
        inputs += [tensor(f"W_{layer}", D, 4 * H, I_l), tensor(f"R_{layer}", D, 4 * H, H),
                   tensor(f"B_{layer}", D, 8 * H), tensor(f"h0_{layer}", D, "B", H), tensor(f"c0_{layer}", D, "B", H)]
        nodes.append(helper.make_node(
            "LSTM", [x, f"W_{layer}", f"R_{layer}", f"B_{layer}", "sequence_lens", f"h0_{layer}", f"c0_{layer}"],
            [f"Y4_{layer}", f"Y_h_{layer}", f"Y_c_{layer}"], hidden_size=H,
            direction="bidirectional" if D == 2 else "forward"))
        # Y (T, D, B, H) -> (T, B, D, H) -> (T, B, D·H): nn.LSTM's output, the next layer's input
        nodes.append(helper.make_node("Transpose", [f"Y4_{layer}"], [f"YT_{layer}"], perm=[0, 2, 1, 3]))
        shape = f"shape_{layer}"
        nodes.append(helper.make_node("Constant", [], [shape], value=helper.make_tensor(
            shape, TensorProto.INT64, [3], [0, 0, D * H])))  # 0: keep that dim (Reshape's rule)
        x = "Y" if layer == config.num_layers - 1 else f"Y_{layer}"
        nodes.append(helper.make_node("Reshape", [f"YT_{layer}", shape], [x]))
        outputs += [tensor(f"Y_h_{layer}", D, "B", H), tensor(f"Y_c_{layer}", D, "B", H)]
    outputs.insert(0, tensor("Y", "T", "B", D * H))
    graph = helper.make_graph(nodes, "lstm_bench_lstm", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


@functools.lru_cache(maxsize=32)
def _session(config: LSTMConfig, dtype: torch.dtype, threads: int) -> ort.InferenceSession:
    """One InferenceSession per configuration, dtype and thread count (T and B are symbolic)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # torch's count: what the harness set for the kernel under test
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(lstm_graph(config, dtype).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def feeds(case: Case) -> dict[str, np.ndarray]:
    """The session's inputs for `case`: x time-major, each layer's weights in ONNX's layout and its
    states, the lengths (T for every sequence without them) as int32."""
    cfg, D = case.config, case.config.directions
    T, B = case.sizes[:2]
    lengths = torch.full((B,), T) if case.lengths is None else case.lengths
    out = {"X": _numpy(time_major(case.x, cfg.batch_first)), "sequence_lens": _numpy(lengths.to(torch.int32))}
    for layer in range(cfg.num_layers):
        w = ONNX.stacked(case.weights, cfg, layer)  # (D, 4H, In), (D, 4H, H), (D, 4H), (D, 4H)
        out[f"W_{layer}"], out[f"R_{layer}"] = _numpy(w.w_ih), _numpy(w.w_hh)
        out[f"B_{layer}"] = _numpy(torch.cat([w.b_ih, w.b_hh], dim=-1))  # (D, 8H) = [Wb, Rb]
        out[f"h0_{layer}"] = _numpy(case.h0[layer * D:(layer + 1) * D])
        out[f"c0_{layer}"] = _numpy(case.c0[layer * D:(layer + 1) * D])
    return out


def onnxruntime_lstm(case: Case) -> Result:
    """nn.LSTM's forward by ONNX Runtime: output (T, B, D·H) (batch_first: (B, T, ·)), h_n and c_n
    (L·D, B, H); `grads` is {} (an inference engine has no backward)."""
    cfg = case.config
    sess = _session(cfg, case.dtype, torch.get_num_threads())
    got = sess.run(None, feeds(case))
    output = torch.from_numpy(got[0])
    if case.lengths is not None:
        output = mask_padded(output, case.lengths)
    h_n = torch.from_numpy(np.concatenate(got[1::2], axis=0))
    c_n = torch.from_numpy(np.concatenate(got[2::2], axis=0))
    output = time_major(output, cfg.batch_first).contiguous()
    return Result(output, h_n, c_n, {}, backend=f"onnxruntime {ort.__version__} cpu")


onnxruntime_lstm.gradients = False
onnxruntime_lstm.dtypes = ("float32",)
onnxruntime_lstm.devices = ("cpu",)
onnxruntime_lstm.features = ("layers", "bidirectional", "batch_first", "lengths")
# MLAS evaluates σ and tanh with rational approximations accurate in absolute, not relative, terms: its
# Sigmoid op gives 3.58e-7 for σ(-15) (exact 3.06e-7), 8.9e-8 for σ(-17) (4.1e-8) and 0 from -18 down
# (onnxruntime 1.32.0, CPUExecutionProvider). Judged with the policy's fast-math floor, as cuDNN is.
onnxruntime_lstm.approximate_activations = True
