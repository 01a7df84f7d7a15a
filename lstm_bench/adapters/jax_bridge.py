"""A JAX function as a torch op whose backward is `jax.vjp`'s (`jax_op`).

    op = jax_op(f)                  f(*arrays) -> tuple of arrays, written in jax.numpy
    outputs = op(*tensors)          torch tensors in, torch tensors out, inside autograd

The forward runs `jax.vjp(f, *arrays)` under `jax.jit` (compiled once per shape and dtype, as
jit caches) and keeps its residuals; the backward hands the incoming gradients to that vjp
(also jitted) and returns its cotangents as tensors. Composed with the layout conversion
(`lstm_bench.adapters.layout`) inside `autograd_kernel`'s forward, the gradients come back by
nn.LSTM's names.

Tensors cross by numpy on the CPU: torch -> numpy shares memory, JAX copies it (or aliases it
read-only: nothing here writes to a case's tensors); JAX -> torch copies. Tensors that are not
floating point (masks, lengths) go in as constants: their gradient is None.

float64: JAX computes in float32 unless `jax_enable_x64` is set. When any input is float64 the
op runs its forward and backward inside `jax.enable_x64(True)` (a context manager, this thread
only), so a user's global JAX configuration is neither read nor changed; float32 inputs run
with whatever the user has set.

JAX is imported inside this module only: lstm-bench itself does not need it
(`pip install "lstm-bench[jax]"`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import jax  # the heavy optional dependency: only this module and the JAX adapters import it
import numpy as np
import torch

from .autodiff import check_bridged


def _x64(tensors: Sequence[torch.Tensor]) -> contextlib.AbstractContextManager:
    """`jax.enable_x64(True)` when a floating input is float64 (else nothing): JAX would silently
    compute a float64 case in float32 otherwise."""
    return jax.enable_x64(True) if any(t.dtype == torch.float64 for t in tensors) else contextlib.nullcontext()


def to_jax(t: torch.Tensor) -> Any:
    """A JAX array holding `t` (CPU)."""
    return jax.numpy.asarray(t.detach().cpu().numpy())


def to_torch(a: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """A torch tensor holding a copy of the JAX array `a`."""
    return torch.from_numpy(np.array(a)).to(device)


class JaxOp:
    """`f(*arrays) -> tuple of arrays` as a torch op: `op(*tensors)` returns a tuple of tensors, its
    gradients by `jax.vjp(f, ...)`. Non-floating tensors are passed as constants (no gradient)."""

    def __init__(self, f: Callable[..., Sequence[Any]], name: str | None = None,
                 compiler_options: dict[str, Any] | None = None) -> None:
        if not callable(f):
            raise ValueError(f"jax_op needs a function of JAX arrays returning a tuple of arrays, got {f!r}")
        self.f = f
        self.__wrapped__ = f  # the kernel's source (registry.source_of) is f's file
        self.name = name or getattr(f, "__name__", "jax_function")

        def forward(diff: tuple, const: tuple, where: tuple[bool, ...]):
            def g(*d):
                d, c = iter(d), iter(const)
                return tuple(f(*(next(d) if w else next(c) for w in where)))
            return jax.vjp(g, *diff)
        # jit caches by the arrays' shapes and dtypes, by `where` (static), and by jax_enable_x64.
        self._forward = jax.jit(forward, static_argnums=2, compiler_options=compiler_options)
        self._backward = jax.jit(lambda vjp, cotangents: vjp(cotangents), compiler_options=compiler_options)

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_bridged(self.name, "JAX", tensors)
        return _JaxFunction.apply(self, *tensors)


class _JaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op: JaxOp, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        where = tuple(t.is_floating_point() for t in tensors)
        ctx.op, ctx.where, ctx.device = op, where, tensors[0].device if tensors else "cpu"
        ctx.x64 = any(t.dtype == torch.float64 for t in tensors)
        with _x64(tensors):
            diff = tuple(to_jax(t) for t, w in zip(tensors, where) if w)
            const = tuple(to_jax(t) for t, w in zip(tensors, where) if not w)
            outputs, ctx.vjp = op._forward(diff, const, where)
            ctx.out_dtypes = [o.dtype for o in outputs]
            return tuple(to_torch(o, ctx.device) for o in outputs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with jax.enable_x64(True) if ctx.x64 else contextlib.nullcontext():
            cotangents = tuple(jax.numpy.asarray(g.detach().cpu().numpy(), dtype=d)
                               for g, d in zip(grads, ctx.out_dtypes))
            d_inputs = iter(ctx.op._backward(ctx.vjp, cotangents))
            out = [to_torch(next(d_inputs), ctx.device) if w else None for w in ctx.where]
        return (None, *out)


def jax_op(f: Callable[..., Sequence[Any]], name: str | None = None,
           compiler_options: dict[str, Any] | None = None) -> JaxOp:
    """The torch op of the JAX function `f(*arrays) -> tuple of arrays`, its backward by `jax.vjp`;
    `compiler_options` go to XLA with each compile (`jax.jit(..., compiler_options=...)`)."""
    return JaxOp(f, name, compiler_options)


__all__ = ["jax_op", "JaxOp", "to_jax", "to_torch"]
