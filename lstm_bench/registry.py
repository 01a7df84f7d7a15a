"""Named BPTT implementations, the built-in ones and any a user registers.

An implementation is a callable `case -> Result`. It may also give its two halves,
`forward(case) -> saved` (the forward half of a training step, returning whatever
backward needs) and `backward(case, saved) -> Result`, so that the benchmarks can
time the forward alone and measure what is kept alive between the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from .contract import Case, Result, check_case, check_result
from .devices import KNOWN_DEVICES, available_devices, check_device

ImplFn = Callable[[Case], Result]


@dataclass(frozen=True)
class Impl:
    """A registered implementation. Calling it checks the case, runs, and checks the result."""

    name: str
    fn: ImplFn
    devices: tuple[str, ...]
    forward: Callable[[Case], Any] | None = None
    backward: Callable[[Case, Any], Result] | None = None
    description: str = ""

    def __call__(self, case: Case) -> Result:
        self.check_case(case)
        return check_result(self.fn(case), case, self.name)

    def check_case(self, case: Case) -> Case:
        """Validate `case` and that this implementation runs on its device."""
        check_case(case)
        if case.device.type not in self.devices:
            raise ValueError(
                f"implementation {self.name!r} runs on {list(self.devices)}, not on {case.device.type!r}")
        return case

    def split(self) -> tuple[Callable[[Case], Any], Callable[[Case, Any], Result]]:
        """(forward, backward) halves; raise NotImplementedError when the implementation has none."""
        if self.forward is None or self.backward is None:
            raise NotImplementedError(f"implementation {self.name!r} registered no separate forward/backward")
        return self.forward, self.backward


_REGISTRY: dict[str, Impl] = {}


def register_impl(
    name: str,
    fn: ImplFn,
    devices: Iterable[str] = KNOWN_DEVICES,
    *,
    forward: Callable[[Case], Any] | None = None,
    backward: Callable[[Case, Any], Result] | None = None,
    description: str = "",
    replace: bool = False,
) -> Impl:
    """Put `fn` (case -> Result) under the harness's gates and benchmarks as `name`."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"implementation name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ValueError(f"implementation {name!r}: fn must be callable, got {type(fn).__name__}")
    if (forward is None) != (backward is None):
        raise ValueError(f"implementation {name!r}: give both forward and backward, or neither")
    devices = tuple(devices) if not isinstance(devices, str) else (devices,)
    for d in devices:
        if d not in KNOWN_DEVICES:
            raise ValueError(f"implementation {name!r}: unknown device {d!r}, expected some of {KNOWN_DEVICES}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"implementation {name!r} is already registered; pass replace=True to replace it")
    impl = Impl(name, fn, devices, forward, backward, description)
    _REGISTRY[name] = impl
    return impl


def unregister_impl(name: str) -> None:
    """Remove a registered implementation (KeyError if unknown)."""
    get_impl(name)
    del _REGISTRY[name]


def get_impl(name: str) -> Impl:
    """The implementation registered as `name`; KeyError listing the known names otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown implementation {name!r}; known: {sorted(_REGISTRY)}") from None


def available_impls(device: str | torch.device = "cpu") -> list[str]:
    """Names of the implementations that run on `device` (which must exist here)."""
    _load_builtins()
    dev = check_device(device).type
    return [name for name, impl in _REGISTRY.items() if dev in impl.devices]


def all_impls() -> list[str]:
    """Every registered name, whatever its devices."""
    _load_builtins()
    return list(_REGISTRY)


def _load_builtins() -> None:
    # The built-in paths register themselves on import; done lazily so that importing
    # the registry from them does not recurse.
    from . import impls  # noqa: F401


__all__ = ["Impl", "register_impl", "unregister_impl", "get_impl", "available_impls", "all_impls",
           "available_devices"]
