"""A TensorFlow function as a torch op whose backward is `tf.GradientTape`'s (`tf_op`).

    op = tf_op(f)                   f(*tensors) -> tuple of tf tensors, run eagerly
    outputs = op(*tensors)          torch tensors in, torch tensors out, inside autograd

The forward runs `f` under a `tf.GradientTape` watching its floating inputs and keeps the tape;
the backward asks the tape for the gradient of the outputs with the incoming gradients as
`output_gradients` (a vector-Jacobian product), and returns it as tensors. Composed with the
layout conversion inside `autograd_kernel`'s forward, gradients come back by nn.LSTM's names.

Tensors cross by numpy on the CPU (copies both ways). Tensors that are not floating point
(masks, lengths) go in as constants: their gradient is None. An input the outputs do not
depend on gets a zero gradient (the tape answers None). TensorFlow computes in the dtype of
its inputs: float64 stays float64.

TensorFlow is imported inside this module only: lstm-bench itself does not need it
(`pip install "lstm-bench[tf]"`). Where Triton is installed (FlashRNN's extra pulls it in) it is
imported first: TensorFlow 2.21 and Triton 3.9 each carry LLVM, and Triton loaded after
TensorFlow aborts the process ("LLVM ERROR: inconsistency in registered CommandLine options",
`python -c "import tensorflow, triton"`), which torch does when it loads Triton on its own
(`torch.utils.flop_counter`); loaded the other way round, both work.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .autodiff import check_bridged

if importlib.util.find_spec("triton") is not None:
    importlib.import_module("triton")  # before TensorFlow (module docstring)
import tensorflow as tf  # noqa: E402  the heavy optional dependency: only this module and the Keras adapter import it


def to_tf(t: torch.Tensor) -> Any:
    """A TensorFlow tensor holding a copy of `t` (CPU)."""
    return tf.constant(t.detach().cpu().numpy())


def to_torch(a: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """A torch tensor holding a copy of the TensorFlow tensor `a`."""
    return torch.from_numpy(np.array(a.numpy())).to(device)


class TfOp:
    """`f(*tf_tensors) -> tuple of tf tensors` as a torch op: `op(*tensors)` returns a tuple of tensors,
    its gradients by `tf.GradientTape`. Non-floating tensors are passed as constants (no gradient)."""

    def __init__(self, f: Callable[..., Sequence[Any]], name: str | None = None) -> None:
        if not callable(f):
            raise ValueError(f"tf_op needs a function of TensorFlow tensors returning a tuple of them, got {f!r}")
        self.f = f
        self.__wrapped__ = f  # the kernel's source (registry.source_of) is f's file
        self.name = name or getattr(f, "__name__", "tf_function")

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_bridged(self.name, "TensorFlow", tensors)
        return _TfFunction.apply(self, *tensors)


class _TfFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op: TfOp, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = [to_tf(t) for t in tensors]
        ctx.where = [t.is_floating_point() for t in tensors]
        ctx.device = tensors[0].device if tensors else "cpu"
        with tf.GradientTape() as tape:
            for a, w in zip(inputs, ctx.where):
                if w:
                    tape.watch(a)
            outputs = tuple(op.f(*inputs))
        ctx.tape, ctx.inputs, ctx.outputs = tape, inputs, outputs
        return tuple(to_torch(o, ctx.device) for o in outputs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        diff = [a for a, w in zip(ctx.inputs, ctx.where) if w]
        d = ctx.tape.gradient(list(ctx.outputs), diff, output_gradients=[to_tf(g) for g in grads])
        d = iter(tf.zeros_like(a) if g is None else g for a, g in zip(diff, d))
        return (None, *(to_torch(next(d), ctx.device) if w else None for w in ctx.where))


def tf_op(f: Callable[..., Sequence[Any]], name: str | None = None) -> TfOp:
    """The torch op of the TensorFlow function `f(*tensors) -> tuple of tensors`, its backward by `tf.GradientTape`."""
    return TfOp(f, name)


__all__ = ["tf_op", "TfOp", "to_tf", "to_torch"]
