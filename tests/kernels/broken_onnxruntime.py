"""ONNX Runtime's LSTM (lstm_bench.adapters.onnxruntime_lstm) given its weights with a layout bug:
each is the shipped adapter run on a case whose weights were first moved so that the operator
receives what the buggy conversion would hand it. The suite and `check` must catch both."""
from __future__ import annotations

import dataclasses

from lstm_bench.adapters.layout import from_gate_order
from lstm_bench.adapters.onnxruntime_lstm import onnxruntime_lstm


def gate_order_not_converted(case):
    """nn.LSTM's gate order (i, f, g, o) handed to the operator, which reads i, o, f, c: the
    conversion to ONNX's order forgotten."""
    weights = {k: (from_gate_order(v, "iofc") if "weight_hr" not in k else v) for k, v in case.weights.items()}
    return onnxruntime_lstm(dataclasses.replace(case, weights=weights))


def directions_swapped(case):
    """The reverse direction's weights stacked first, the forward's second (ONNX's W (D, 4H, I)
    holds the forward direction at index 0)."""
    weights = dict(case.weights)
    for name in case.weights:
        if name.endswith("_reverse"):
            forward = name.removesuffix("_reverse")
            weights[name], weights[forward] = case.weights[forward], case.weights[name]
    return onnxruntime_lstm(dataclasses.replace(case, weights=weights))


for _kernel in (gate_order_not_converted, directions_swapped):
    for _what in ("gradients", "dtypes", "devices", "features"):
        setattr(_kernel, _what, getattr(onnxruntime_lstm, _what))
