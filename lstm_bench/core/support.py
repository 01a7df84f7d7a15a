"""What an implementation declares it supports, and the reason a case falls outside it.

Declared at registration (`register_impl(..., dtypes=..., max_sizes=..., deterministic=...)`,
or as attributes of a function loaded with `--impl module:function`). A case or benchmark
point outside the declaration is *skipped with the reason* by every gate, `check` and
`bench`: never silently passed, never reported as a failure.

    devices        device types it runs on ("cpu", "cuda")
    dtypes         dtype names it computes in ("float32", "float64", ...)
    features       the parts of nn.LSTM's configuration it implements beyond a single-layer,
                   unidirectional, time-major LSTM without projection over full-length
                   sequences: "layers", "bidirectional", "projection", "batch_first", "lengths"
    max_sizes      upper limits of the sizes, e.g. {"H": 1024, "T": 4096}
    deterministic  False when the same case twice may give different bits (atomics on
                   CUDA); the determinism gate then expects a failure, with `why_nondeterministic`
    gradients      False for a forward-only kernel (an inference engine): its Result has
                   `grads == {}`, it is judged on output, h_n and c_n, and the gates that need
                   gradients skip with `FORWARD_ONLY` as the reason
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch

from .devices import KNOWN_DEVICES

SIZE_NAMES = ("T", "B", "I", "H")
DTYPES = ("float32", "float64", "bfloat16", "float16")  # the dtypes a case can be made in: the one list
DEFAULT_DTYPES = ("float32", "float64")  # what a kernel that declares nothing is judged in
# Other spellings a user types (torch's own aliases and the usual short names), one parser for every command.
DTYPE_ALIASES = {"float": "float32", "fp32": "float32", "double": "float64", "fp64": "float64",
                 "half": "float16", "fp16": "float16", "bf16": "bfloat16"}
FEATURES = ("layers", "bidirectional", "projection", "batch_first", "lengths")
# What every report, skip and summary says of a kernel declared `gradients=False`: the one wording.
FORWARD_ONLY = "forward only: gradients not judged (declared gradients=False)"


class Unsupported(ValueError):
    """A case outside what an implementation declared it supports; the message is the reason."""


def dtype_name(dtype: torch.dtype | str) -> str:
    """"float32" for torch.float32 (or the string itself)."""
    return dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")


def parse_dtype(text: str) -> str:
    """The canonical name (one of `DTYPES`) of a dtype as typed: "float32", "torch.float32",
    "fp32", "half", ...; ValueError naming the accepted names otherwise."""
    name = text.strip().lower().removeprefix("torch.")
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"dtype {text!r} is not one an LSTM case can be made in; use one of {', '.join(DTYPES)} "
                         f"(or {', '.join(DTYPE_ALIASES)})")
    return name


@dataclass(frozen=True)
class Support:
    """What an implementation runs on; `reason(...)` says why a case is outside it, or None."""

    devices: tuple[str, ...] = KNOWN_DEVICES
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    features: tuple[str, ...] = FEATURES
    max_sizes: Mapping[str, int] = field(default_factory=dict)
    deterministic: bool = True
    why_nondeterministic: str = ""
    approximate_on: tuple[str, ...] = ()  # devices where it computes σ and tanh with approximate intrinsics
    gradients: bool = True  # False: forward only, judged on output, h_n and c_n

    @classmethod
    def declare(cls, *, devices: Iterable[str] = KNOWN_DEVICES, dtypes: Iterable[str] = DEFAULT_DTYPES,
                features: Iterable[str] = FEATURES, max_sizes: Mapping[str, int] | None = None,
                deterministic: bool = True, why_nondeterministic: str = "",
                approximate_activations: bool | Iterable[str] = False, gradients: bool = True,
                name: str = "?") -> "Support":
        """A checked Support; ValueError naming the implementation and the bad value.

        `approximate_activations`: True (every device) or the devices on which the kernel
        evaluates σ and tanh with approximate intrinsics (fast math, as cuDNN does); its
        float32 results there are judged with the policy's fast-math floor. `gradients=False`:
        a forward-only kernel (module docstring)."""
        devices = (devices,) if isinstance(devices, str) else tuple(devices)
        for d in devices:
            if d not in KNOWN_DEVICES:
                raise ValueError(f"implementation {name!r}: unknown device {d!r}, expected some of {KNOWN_DEVICES}")
        dtypes = (dtypes,) if isinstance(dtypes, str) else tuple(dtype_name(d) for d in dtypes)
        for d in dtypes:
            if not isinstance(getattr(torch, d, None), torch.dtype) or not getattr(torch, d).is_floating_point:
                raise ValueError(f"implementation {name!r}: dtypes must name floating torch dtypes, got {d!r}")
        features = (features,) if isinstance(features, str) else tuple(features)
        for f in features:
            if f not in FEATURES:
                raise ValueError(f"implementation {name!r}: unknown feature {f!r}, expected some of {FEATURES}")
        limits = dict(max_sizes or {})
        for k, v in limits.items():
            if k not in SIZE_NAMES or isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"implementation {name!r}: max_sizes must map some of {SIZE_NAMES} to positive "
                                 f"ints, got {k!r}: {v!r}")
        if not isinstance(deterministic, bool):
            raise ValueError(f"implementation {name!r}: deterministic must be True or False, got {deterministic!r}")
        if not deterministic and not why_nondeterministic:
            why_nondeterministic = "declared non-deterministic"
        if not isinstance(gradients, bool):
            raise ValueError(f"implementation {name!r}: gradients must be True or False, got {gradients!r}")
        if isinstance(approximate_activations, bool):
            approximate = KNOWN_DEVICES if approximate_activations else ()
        else:
            approximate = ((approximate_activations,) if isinstance(approximate_activations, str)
                           else tuple(approximate_activations))
            for d in approximate:
                if d not in KNOWN_DEVICES:
                    raise ValueError(f"implementation {name!r}: approximate_activations names unknown device {d!r}, "
                                     f"expected some of {KNOWN_DEVICES} (or True)")
        return cls(devices, dtypes, features, limits, deterministic, why_nondeterministic, approximate, gradients)

    def reason(self, *, device: str, dtype: torch.dtype | str, sizes: Mapping[str, int],
               features: Iterable[str] = ()) -> str | None:
        """Why a case on `device` in `dtype` with `sizes` ({"T": .., "B": .., ...}) that uses
        `features` (see `needed_features`) is not supported, or None."""
        if device not in self.devices:
            return f"runs on {list(self.devices)}, not on {device}"
        if dtype_name(dtype) not in self.dtypes:
            return f"computes in {list(self.dtypes)}, not in {dtype_name(dtype)}"
        missing = [f for f in features if f not in self.features]
        if missing:
            return f"does not implement {', '.join(missing)} (declares features {list(self.features)})"
        over = [f"{k}={sizes[k]} > {limit}" for k, limit in self.max_sizes.items() if sizes.get(k, 0) > limit]
        if over:
            return f"declares max sizes {dict(self.max_sizes)}: {', '.join(over)}"
        return None


def needed_features(config, lengths) -> list[str]:
    """The features of `FEATURES` a case of `config` (an LSTMConfig) with `lengths` uses."""
    used = {"layers": config.num_layers > 1, "bidirectional": config.bidirectional,
            "projection": config.proj_size > 0, "batch_first": config.batch_first, "lengths": lengths is not None}
    return [f for f in FEATURES if used[f]]
