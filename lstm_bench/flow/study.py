"""The two studies of `lstm-bench flow`: RNN vs GRU vs LSTM on one task, and the LSTM's
forget-gate initialisations (bias 0, 1, 2, chrono).

Task (the seed's): x_t ~ N(0, 1), zero initial states, loss on the last step's output
(or on every step), `samples` inputs per model draw and `seeds` model draws, every
weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) as PyTorch initialises them. Seed index s draws
the weights of every model from a generator seeded with seed + s, the inputs from one seeded
with seed + s + X_SEED_OFFSET and the chrono biases from seed + s + CHRONO_SEED_OFFSET
(models.py: independent streams), so the models of one seed see the same inputs.

decay ratio = mean_samples ||dL/dx_1|| / mean_samples ||dL/dx_T|| per seed (the step
farthest from the loss over the step at it), summarised over seeds by its geometric mean.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..core.contract import check_dtype
from ..core.devices import check_device
from ..core.values import check_positive_int
from .forget import forget_stats, forget_values
from .init import apply_init_
from .jacobian import JacobianProfile, decompose_sequence
from .memory_length import DEFAULT_THRESHOLD, MemoryLength, check_threshold, effective_memory
from .models import X_SEED_OFFSET, make_model
from .norms import check_loss, lstm_case, step_gradients


@dataclass(frozen=True)
class Config:
    """One model of a study: `kind` in RNN/GRU/LSTM, `init` one of flow.init.INITS for an LSTM."""

    name: str
    kind: str
    init: str | None = None


COMPARISON = (
    Config("RNN (tanh)", "RNN"),
    Config("GRU", "GRU"),
    Config("LSTM (PyTorch init)", "LSTM", "pytorch"),
    Config("LSTM (forget bias 1)", "LSTM", "bias 1"),
)
INIT_STUDY = (
    Config("LSTM bias 0", "LSTM", "bias 0"),
    Config("LSTM bias 1", "LSTM", "bias 1"),
    Config("LSTM bias 2", "LSTM", "bias 2"),
    Config("LSTM chrono", "LSTM", "chrono"),
)


@dataclass
class FlowSettings:
    """Sizes and sampling of a study (seed defaults: T=100, H=128, I=64, 50 samples)."""

    seq_len: int = 100
    hidden_size: int = 128
    input_size: int = 64
    samples: int = 50
    seeds: int = 5
    seed: int = 0
    threshold: float = DEFAULT_THRESHOLD
    loss: str = "last"
    dtype: str = "float64"
    device: str = "cpu"
    jacobian_samples: int = 4
    jacobian_steps: int = 20

    def check(self) -> "FlowSettings":
        for name in ("seq_len", "hidden_size", "input_size", "samples", "seeds", "jacobian_samples",
                     "jacobian_steps"):
            check_positive_int(name, getattr(self, name))
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2 (a farthest step and the step at the loss), got {self.seq_len}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        check_threshold(self.threshold)
        check_loss(self.loss)
        check_dtype(self.dtype)
        check_device(self.device)
        return self

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FlowSummary:
    """One model's measurements. norms[k] is (seeds, T, samples), row t-1 = step t (loss at row T-1)."""

    config: Config
    norms: dict[str, torch.Tensor]
    memory: MemoryLength
    jacobian: JacobianProfile | None = None
    forget: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    def decay_ratios(self, which: str = "x") -> list[float]:
        """Per seed: mean over samples of the norm at step 1 over that at step T."""
        n = self.norms[which].mean(dim=2)  # (seeds, T)
        return (n[:, 0] / n[:, -1]).tolist()

    def decay_ratio(self, which: str = "x") -> float:
        """Geometric mean over seeds of `decay_ratios` (0 if any underflowed to 0)."""
        r = torch.tensor(self.decay_ratios(which), dtype=torch.float64)
        return 0.0 if bool((r <= 0).any()) else float(r.log().mean().exp())

    def curve(self, which: str = "x") -> dict[str, list[float]]:
        """By distance d = 0..T-1 from the last step: mean and 10/50/90% quantiles over seeds x samples."""
        n = self.norms[which].flip(1).transpose(0, 1).reshape(self.norms[which].shape[1], -1)  # (T, seeds*samples)
        q = torch.quantile(n, torch.tensor([0.1, 0.5, 0.9], dtype=n.dtype), dim=1)
        return {"mean": n.mean(dim=1).tolist(), "q10": q[0].tolist(), "median": q[1].tolist(), "q90": q[2].tolist()}

    def row(self) -> dict:
        """The table row: decay ratios, effective memory and (LSTM) Jacobian and forget summaries."""
        out = {"model": self.name, "decay x": self.decay_ratio("x"), "decay h": self.decay_ratio("h"),
               "decay c": self.decay_ratio("c") if "c" in self.norms else None,
               "memory": self.memory.mean, "memory sd": self.memory.std, "censored": self.memory.censored}
        if self.forget is not None:
            out["f median"] = self.forget["quantiles"]["q50"]
        if self.jacobian is not None:
            out["direct/indirect"] = self.jacobian.summary()["direct/indirect (median)"]
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.config.kind, "init": self.config.init, "row": self.row(),
            "decay_ratios": {k: self.decay_ratios(k) for k in self.norms},
            "curves": {k: self.curve(k) for k in self.norms},
            "memory": self.memory.to_dict(),
            "jacobian": None if self.jacobian is None else self.jacobian.to_dict(),
            "forget": self.forget, **self.extra,
        }


def inputs(settings: FlowSettings, s: int) -> torch.Tensor:
    """x (T, samples, I) ~ N(0, 1) of seed index s, in the settings' dtype and device."""
    gen = torch.Generator().manual_seed(settings.seed + s + X_SEED_OFFSET)
    x = torch.randn(settings.seq_len, settings.samples, settings.input_size, dtype=torch.float64, generator=gen)
    return x.to(dtype=check_dtype(settings.dtype), device=settings.device)


def build_model(config: Config, settings: FlowSettings, s: int) -> torch.nn.Module:
    """The model of `config` for seed index s (weights from seed + s; chrono_init_ offsets its own
    draws from the same seed onto the chrono stream)."""
    model = make_model(config.kind, settings.input_size, settings.hidden_size, seed=settings.seed + s,
                       dtype=check_dtype(settings.dtype), device=settings.device)
    if config.kind == "LSTM" and config.init is not None:
        apply_init_(model, config.init, t_max=settings.seq_len, seed=settings.seed + s)
    return model


def run_config(config: Config, settings: FlowSettings) -> FlowSummary:
    """Every measurement of one model over the settings' seeds and samples."""
    settings.check()
    per_seed: dict[str, list[torch.Tensor]] = {}
    jacobian = forget = None
    for s in range(settings.seeds):
        model, x = build_model(config, settings, s), inputs(settings, s)
        grads = step_gradients(model, x, loss=settings.loss)
        for k, v in grads.norms().items():
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{config.name}: non-finite d{k} norms at seed index {s} in {settings.dtype} "
                                 f"(overflow; try float64 or a shorter sequence)")
            per_seed.setdefault(k, []).append(v.to(torch.float64).cpu())
        if config.kind == "LSTM" and s == 0:
            case = lstm_case(model, x, settings.loss)
            jacobian = decompose_sequence(case, samples=settings.jacobian_samples,
                                          steps=settings.jacobian_steps)
            forget = forget_stats(forget_values(case).cpu())
    norms = {k: torch.stack(v) for k, v in per_seed.items()}
    lags = effective_memory(norms["x"].transpose(0, 1).reshape(settings.seq_len, -1), settings.threshold)
    memory = MemoryLength.of(lags, settings.seq_len, settings.threshold)
    return FlowSummary(config, norms, memory, jacobian, forget)


def run_configs(configs, settings: FlowSettings, memo: dict | None = None) -> list[FlowSummary]:
    """`run_config` of each config; `memo` ({(kind, init): FlowSummary}) shares a model measured
    under another name (the comparison's "LSTM (forget bias 1)" is the init study's "bias 1")."""
    memo = {} if memo is None else memo
    out = []
    for c in configs:
        key = (c.kind, c.init)
        if key not in memo:
            memo[key] = run_config(c, settings)
        out.append(dataclasses.replace(memo[key], config=c))
    return out


def compare_models(settings: FlowSettings | None = None, configs=COMPARISON, memo: dict | None = None) -> list[FlowSummary]:
    """RNN (tanh), GRU, LSTM with PyTorch's init and LSTM with forget bias 1, on one task."""
    return run_configs(configs, (settings or FlowSettings()).check(), memo)


def init_study(settings: FlowSettings | None = None, configs=INIT_STUDY, memo: dict | None = None) -> list[FlowSummary]:
    """LSTM with forget bias 0, 1, 2 and chrono init (t_max = seq_len), on the same task."""
    return run_configs(configs, (settings or FlowSettings()).check(), memo)


def fmt(value: object) -> str:
    """Table cell: 3 significant digits, scientific where small or large."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return str(value)
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)
