"""Hook-based gradient diagnostics for any model with RNN/GRU/LSTM layers.

    with GradientDiagnostics(model, vanishing=1e-7, exploding=1e3) as diag:
        loss = criterion(model(x), y); loss.backward()
    print(diag.report())            # per layer and backward call; flags; .to_dict() / .to_json()

Per recurrent layer and per backward call it records the norm of the gradient w.r.t.
the layer's output sequence and w.r.t. its input sequence, captured by
`register_full_backward_hook` (not the deprecated `register_backward_hook`, which for
an LSTM reports the gradients of its last internal op). The full hook only sees
top-level tensors, and nn.LSTM returns (output, (h_n, c_n)); so the final-state
gradients dL/dh_n and dL/dc_n are caught by tensor hooks attached in a forward hook.
Backward calls are matched to forward calls last-in first-out, which is right for the
usual forward-then-backward loop. Every hook is removed on exit (or `remove()`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .models import recurrent_layers

FIELDS = ("output", "input", "h_n", "c_n")


def _norm(t: object) -> float | None:
    return float(t.detach().norm()) if isinstance(t, torch.Tensor) else None


@dataclass
class Record:
    """Gradient norms of one layer in one forward/backward call (None where nothing flowed)."""

    layer: str
    call: int
    norms: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FIELDS))


@dataclass
class DiagnosticsReport:
    """Records and the flags: a norm below `vanishing` or above `exploding` (or non-finite)."""

    records: list[Record]
    vanishing: float
    exploding: float

    def flags(self) -> list[dict]:
        out = []
        for r in self.records:
            for name, v in r.norms.items():
                if v is None:
                    continue
                what = "non-finite" if not math.isfinite(v) else "vanishing" if v < self.vanishing \
                    else "exploding" if v > self.exploding else None
                if what:
                    out.append({"layer": r.layer, "call": r.call, "grad": name, "norm": v, "flag": what})
        return out

    @property
    def vanishing_found(self) -> bool:
        return any(f["flag"] == "vanishing" for f in self.flags())

    @property
    def exploding_found(self) -> bool:
        return any(f["flag"] in ("exploding", "non-finite") for f in self.flags())

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per layer and gradient: mean, min and max of the norm over the backward calls."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for r in self.records:
            for name, v in r.norms.items():
                if v is not None:
                    out.setdefault(r.layer, {}).setdefault(name, []).append(v)
        return {layer: {name: {"mean": sum(v) / len(v), "min": min(v), "max": max(v), "calls": len(v)}
                        for name, v in grads.items()} for layer, grads in out.items()}

    def to_dict(self) -> dict:
        return {"vanishing": self.vanishing, "exploding": self.exploding,
                "records": [{"layer": r.layer, "call": r.call, **r.norms} for r in self.records],
                "summary": self.summary(), "flags": self.flags()}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        lines = [f"gradient diagnostics (vanishing < {self.vanishing:g}, exploding > {self.exploding:g})",
                 f"{'layer':<16} {'grad':<7} {'calls':>5} {'mean':>10} {'min':>10} {'max':>10}"]
        for layer, grads in self.summary().items():
            for name, s in grads.items():
                lines.append(f"{layer:<16} {name:<7} {s['calls']:>5} {s['mean']:>10.3e} {s['min']:>10.3e} "
                             f"{s['max']:>10.3e}")
        if not self.records:
            lines.append("(no backward call was captured)")
        flags = self.flags()
        lines += [f"  {f['flag']}: {f['layer']} d{f['grad']} norm {f['norm']:.3e} in call {f['call']}" for f in flags]
        lines.append("no vanishing or exploding gradients flagged" if self.records and not flags
                     else f"{len(flags)} flag(s)" if flags else "")
        return "\n".join(line for line in lines if line)


class GradientDiagnostics:
    """Capture gradient norms of every recurrent layer of `model`; a context manager.

    vanishing, exploding: thresholds on a norm (0 <= vanishing < exploding).
    """

    def __init__(self, model: nn.Module, *, vanishing: float = 1e-7, exploding: float = 1e3):
        for name, v in (("vanishing", vanishing), ("exploding", exploding)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not vanishing < exploding:
            raise ValueError(f"vanishing must be below exploding, got vanishing={vanishing}, exploding={exploding}")
        self.layers = recurrent_layers(model)
        self.vanishing, self.exploding = float(vanishing), float(exploding)
        self.records: list[Record] = []
        self._pending: dict[str, list[Record]] = {}
        self._handles: list = []  # module hooks
        self._tensor_handles: list = []  # hooks on h_n, c_n of each forward call while attached

    # -- hooks
    def attach(self) -> "GradientDiagnostics":
        if self._handles:
            raise RuntimeError("hooks are already attached")
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
            self._handles.append(module.register_full_backward_hook(self._backward_hook(name)))
        return self

    def remove(self) -> None:
        """Remove every hook this object registered (idempotent)."""
        for handle in self._handles + self._tensor_handles:
            handle.remove()
        self._handles.clear()
        self._tensor_handles.clear()
        self._pending.clear()

    def __enter__(self) -> "GradientDiagnostics":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.remove()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def _forward_hook(self, name: str):
        def hook(module, args, output):
            if not torch.is_grad_enabled():
                return
            record = Record(name, sum(r.layer == name for r in self.records))
            self.records.append(record)
            self._pending.setdefault(name, []).append(record)
            # nn.LSTM: (output, (h_n, c_n)); GRU/RNN: (output, h_n); cells: h or (h, c).
            if not isinstance(module, nn.RNNBase):
                return  # a cell's outputs are top-level tensors: the full backward hook sees them
            states = output[1] if isinstance(output, tuple) and len(output) == 2 else None
            states = (states,) if isinstance(states, torch.Tensor) else states or ()
            for key, t in zip(("h_n", "c_n"), states):
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    self._tensor_handles.append(t.register_hook(self._state_hook(record, key)))
        return hook

    @staticmethod
    def _state_hook(record: Record, key: str):
        def hook(grad):
            record.norms[key] = _norm(grad)
        return hook

    def _backward_hook(self, name: str):
        def hook(module, grad_input, grad_output):
            pending = self._pending.get(name)
            if not pending:
                return
            record = pending.pop()  # last in, first out
            record.norms["output"] = _norm(grad_output[0]) if grad_output else None
            record.norms["input"] = _norm(grad_input[0]) if grad_input else None
            if isinstance(module, nn.LSTMCell) and len(grad_output) > 1:
                record.norms["c_n"] = _norm(grad_output[1])
        return hook

    def report(self) -> DiagnosticsReport:
        return DiagnosticsReport(list(self.records), self.vanishing, self.exploding)
