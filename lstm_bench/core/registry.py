"""Named BPTT implementations, the built-in ones and any a user registers.

An implementation is a callable `case -> Result`. It may also give its two halves,
`forward(case) -> saved` (the forward half of a training step, returning whatever
backward needs) and `backward(case, saved) -> Result`, so that the benchmarks can
time the forward alone and measure what is kept alive between the two.

A user's implementation is registered with `register_impl`, or loaded by name from
its module with `load_impl("mypkg.kernels:my_lstm")` (also `path/to/file.py:my_lstm`),
which is what `--impl` does on the command line. The adapters of other libraries that ship with
the package (`SHIPPED_ADAPTERS`: FlashRNN, JAX, Keras, ONNX Runtime, ...) load by their short
names; one whose library is not installed skips every case and point with the reason (the pip
extra that installs it), never a failure. Each declares what it supports
(`lstm_bench.core.support`: devices, dtypes, size limits, determinism); a case outside that
is skipped with the reason, never judged.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .contract import Case, Result, check_case, check_result
from .devices import KNOWN_DEVICES, check_device
from .support import DEFAULT_DTYPES, FEATURES, Support, Unsupported, needed_features

ImplFn = Callable[[Case], Result]


@dataclass(frozen=True)
class Impl:
    """A registered implementation. Calling it checks the case, runs, and checks the result."""

    name: str
    fn: ImplFn
    support: Support = Support()
    forward: Callable[[Case], Any] | None = None
    backward: Callable[[Case, Any], Result] | None = None
    description: str = ""
    origin: str = ""  # the spec it was loaded from, as given (`[NAME=]module:function`); "" if registered
    source: dict = field(default_factory=dict, compare=False)  # {"file", "sha256"} of a loaded kernel's module
    missing: str = ""  # why a shipped adapter cannot run here (its library is not installed); "" when it can

    @property
    def spec(self) -> str:
        """What names this implementation on a command line in a fresh process: the spec it was
        loaded from (so a reproduce line finds a user's kernel), else its registered name."""
        return self.origin or self.name

    @property
    def devices(self) -> tuple[str, ...]:
        return self.support.devices

    def __call__(self, case: Case) -> Result:
        self.check_case(case)
        return check_result(self.fn(case), case, self.name, gradients=self.support.gradients)

    def unsupported_reason(self, case: Case) -> str | None:
        """Why this implementation does not support `case` (as it declared), or None."""
        if self.missing:
            return self.missing
        T, B, I, H = case.sizes
        reason = self.support.reason(device=case.device.type, dtype=case.dtype, sizes={"T": T, "B": B, "I": I, "H": H},
                                     features=needed_features(case.config, case.lengths))
        return None if reason is None else f"implementation {self.name!r} {reason}"

    def check_case(self, case: Case) -> Case:
        """Validate `case`; `Unsupported` (a ValueError) with the reason when it is outside what this supports."""
        check_case(case)
        reason = self.unsupported_reason(case)
        if reason is not None:
            raise Unsupported(reason)
        return case

    def split(self) -> tuple[Callable[[Case], Any], Callable[[Case, Any], Result]]:
        """(forward, backward) halves; raise NotImplementedError when the implementation has none."""
        if self.forward is None or self.backward is None:
            raise NotImplementedError(f"implementation {self.name!r} registered no separate forward/backward")
        return self.forward, self.backward


_REGISTRY: dict[str, Impl] = {}


@dataclass(frozen=True)
class Shipped:
    """An adapter of another library that ships with lstm-bench (`lstm_bench.adapters`), as an optional
    extra: `spec` (module:function) is loaded on first use of its short name, when every module of
    `needs` imports; else its cases and points are skipped, naming `pip install "lstm-bench[extra]"`."""

    spec: str
    extra: str
    needs: tuple[str, ...]


# Short name -> the shipped adapter; docs/adapters.md lists each with its library's version.
SHIPPED_ADAPTERS: dict[str, Shipped] = {
    "onnxruntime": Shipped("lstm_bench.adapters.onnxruntime_lstm:onnxruntime_lstm", "onnxruntime",
                           ("onnxruntime", "onnx")),
    "flashrnn": Shipped("lstm_bench.adapters.flashrnn_lstm:flashrnn", "flashrnn", ("flashrnn",)),
    "flashrnn_fwbw": Shipped("lstm_bench.adapters.flashrnn_lstm:flashrnn_fwbw", "flashrnn", ("flashrnn",)),
    "flashrnn_cuda": Shipped("lstm_bench.adapters.flashrnn_lstm:flashrnn_cuda", "flashrnn", ("flashrnn",)),
    "flashrnn_cuda_fused": Shipped("lstm_bench.adapters.flashrnn_lstm:flashrnn_cuda_fused", "flashrnn", ("flashrnn",)),
    "flashrnn_triton": Shipped("lstm_bench.adapters.flashrnn_lstm:flashrnn_triton", "flashrnn", ("flashrnn", "triton")),
    "haste": Shipped("lstm_bench.adapters.haste_lstm:haste", "haste", ("haste_pytorch",)),
    "haste_cuda": Shipped("lstm_bench.adapters.haste_lstm:haste_cuda", "haste", ("haste_pytorch", "haste_pytorch_lib")),
    "jax_scan": Shipped("lstm_bench.adapters.jax_lstm:jax_scan", "jax", ("jax",)),
    "flax_lstm": Shipped("lstm_bench.adapters.flax_lstm:flax_lstm", "jax", ("jax", "flax")),
    "keras_lstm": Shipped("lstm_bench.adapters.keras_lstm:keras_lstm", "tf", ("tensorflow", "keras")),
}


def register_impl(
    name: str,
    fn: ImplFn,
    devices: Iterable[str] = KNOWN_DEVICES,
    *,
    forward: Callable[[Case], Any] | None = None,
    backward: Callable[[Case, Any], Result] | None = None,
    description: str = "",
    replace: bool = False,
    dtypes: Iterable[str] = DEFAULT_DTYPES,
    features: Iterable[str] = FEATURES,
    max_sizes: dict[str, int] | None = None,
    deterministic: bool = True,
    why_nondeterministic: str = "",
    approximate_activations: bool | Iterable[str] = False,
    gradients: bool = True,
) -> Impl:
    """Put `fn` (case -> Result) under the harness's gates and benchmarks as `name`.

    `devices`, `dtypes`, `features` (of nn.LSTM's configuration, `lstm_bench.core.support`) and
    `max_sizes` declare what it supports (cases outside are skipped with the reason); `deterministic=False` (with `why_nondeterministic`) makes
    the determinism gate an expected failure; `approximate_activations` (True, or the devices)
    judges float32 results with the policy's fast-math floor. `forward`/`backward` halves let the
    benchmarks time the forward alone and measure what it keeps for the backward. `gradients=False`
    declares a forward-only kernel (its Result's grads are {}): judged on output, h_n and c_n.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"implementation name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ValueError(f"implementation {name!r}: fn must be callable, got {type(fn).__name__}")
    if (forward is None) != (backward is None):
        raise ValueError(f"implementation {name!r}: give both forward and backward, or neither")
    support = Support.declare(devices=devices, dtypes=dtypes, features=features, max_sizes=max_sizes,
                              deterministic=deterministic, why_nondeterministic=why_nondeterministic,
                              approximate_activations=approximate_activations, gradients=gradients, name=name)
    if name in _REGISTRY and not replace:
        raise ValueError(f"implementation {name!r} is already registered; pass replace=True to replace it")
    impl = Impl(name, fn, support, forward, backward, description)
    _REGISTRY[name] = impl
    return impl


def unregister_impl(name: str) -> None:
    """Remove a registered implementation (KeyError if unknown)."""
    get_impl(name)
    del _REGISTRY[name]


def get_impl(name: str) -> Impl:
    """The implementation registered as `name`; KeyError listing the known names otherwise."""
    _load_builtins()
    if isinstance(name, str) and name not in _REGISTRY and name in SHIPPED_ADAPTERS:
        return _load_shipped(name)
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown implementation {name!r}; known: {sorted(_REGISTRY)}, "
                       f"shipped adapters: {sorted(SHIPPED_ADAPTERS)}") from None


def _load_shipped(name: str) -> Impl:
    """Register the shipped adapter `name`: loaded from its spec, or, when a module it needs is not
    installed, an Impl that skips everything with the reason."""
    shipped = SHIPPED_ADAPTERS[name]
    absent = [m for m in shipped.needs if importlib.util.find_spec(m) is None]
    if absent:
        reason = (f"implementation {name!r} needs {', '.join(absent)}, not installed here: "
                  f"pip install \"lstm-bench[{shipped.extra}]\"")

        def not_installed(case: Case) -> Result:
            raise Unsupported(reason)
        impl = Impl(name, not_installed, Support.declare(name=name), description=shipped.spec, origin=name,
                    missing=reason)
    else:
        loaded = load_impl(f"{name}={shipped.spec}")
        impl = replace(loaded, origin=name)  # the short name finds it again in any process (reproduce lines)
    _REGISTRY[name] = impl
    return impl


def available_impls(device: str | torch.device = "cpu") -> list[str]:
    """Names of the implementations that run on `device` (which must exist here); a shipped adapter
    whose library is not installed runs nowhere."""
    _load_builtins()
    dev = check_device(device).type
    return [name for name, impl in _REGISTRY.items() if dev in impl.devices and not impl.missing]


def all_impls() -> list[str]:
    """Every registered name, whatever its devices."""
    _load_builtins()
    return list(_REGISTRY)


def _import_module(module: str, spec: str) -> Any:
    """The module `module` names: a dotted name (importable, or in the working directory) or a .py file."""
    if module.endswith(".py") or os.sep in module:
        path = Path(module).resolve()
        if not path.is_file():
            raise ValueError(f"{spec}: no such file {module!r}")
        name = "lstm_bench_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        if name in sys.modules:  # the same file twice in one process: the same functions
            return sys.modules[name]
        loader = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(loader)
        sys.modules[name] = mod
        try:
            loader.loader.exec_module(mod)
        except Exception as err:
            del sys.modules[name]
            raise ValueError(f"{spec}: importing {module} failed: {type(err).__name__}: {err}") from None
        return mod
    # A console script's sys.path does not hold the working directory; the user's
    # module usually lives there.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{spec}: cannot import module {module!r} ({err})") from None
    except Exception as err:
        raise ValueError(f"{spec}: importing {module!r} failed: {type(err).__name__}: {err}") from None


DECLARATIONS = ("devices", "dtypes", "features", "max_sizes", "deterministic", "why_nondeterministic",
                "approximate_activations", "gradients")


def declared_by(fn: Callable) -> tuple[dict[str, Any], Callable | None, Callable | None]:
    """What attributes on a kernel function declare: those of `DECLARATIONS` it has (as keyword
    arguments of `register_impl` / `Support.declare`), and its forward and backward halves
    (both callable, else both None)."""
    declared = {k: getattr(fn, k) for k in DECLARATIONS if hasattr(fn, k)}
    forward, backward = getattr(fn, "forward", None), getattr(fn, "backward", None)
    if not (callable(forward) and callable(backward)):
        forward = backward = None
    return declared, forward, backward


def load_impl(spec: str) -> Impl:
    """Import and register the function `[NAME=]module:function` (or `[NAME=]path/file.py:function`) names.

    The function follows the contract `case -> Result`. Optional attributes on it
    declare what `register_impl` takes (`declared_by`): `devices`, `dtypes`, `features`,
    `max_sizes`, `deterministic`, `why_nondeterministic`, `gradients`, and `forward` and `backward` (the two
    halves, so that the forward is timed alone and its saved activations measured). It
    is registered as NAME, by default the function's name; loading the same function
    again returns the same Impl. ValueError, naming what was wrong, otherwise.
    """
    name, sep, target = spec.partition("=")
    if not sep:
        name, target = "", spec
    module, _, attr = target.rpartition(":")
    if not module or not attr:
        raise ValueError(f"{spec!r}: expected module:function or path/file.py:function")
    obj = _import_module(module, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{spec}: {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec}: {attr!r} is not callable (it is a {type(obj).__name__})")
    name = name or attr.split(".")[-1]
    existing = _REGISTRY.get(name)
    if existing is not None:
        if existing.fn is obj:
            return existing
        raise ValueError(f"{spec}: the name {name!r} is taken by another implementation; "
                         f"name yours NAME={target}")
    declared, forward, backward = declared_by(obj)
    devices = declared.pop("devices", KNOWN_DEVICES)
    try:
        impl = register_impl(name, obj, devices, forward=forward, backward=backward, description=target,
                             **declared)
    except ValueError as err:
        raise ValueError(f"{spec}: {err}") from None
    _REGISTRY[name] = impl = replace(impl, origin=spec, source=source_of(obj))
    return impl


def source_of(fn: Callable) -> dict[str, str]:
    """Where `fn` is defined: {"file": path, "sha256": of the file's bytes}, or {} when it has no
    source file (a builtin, a C extension's function). A results file keeps it, so that
    `--resume` can refuse a different kernel that happens to have the same name."""
    try:
        path = Path(inspect.getsourcefile(inspect.unwrap(fn)) or "")
    except TypeError:
        return {}
    if not path.is_file():
        return {}
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def resolve_impls(specs: Iterable[str]) -> list[str]:
    """Registered names for `specs`: each a registered name, or module:function to load (`load_impl`).

    KeyError for a name that is neither; duplicates are dropped, order is kept."""
    names: list[str] = []
    for spec in specs:
        if spec in all_impls() or spec in SHIPPED_ADAPTERS:
            name = get_impl(spec).name
        elif ":" in spec:
            name = load_impl(spec).name
        else:
            raise KeyError(f"unknown implementation {spec!r}; known: {', '.join(all_impls())}; shipped adapters: "
                           f"{', '.join(SHIPPED_ADAPTERS) or 'none'} (or give module:function)")
        if name not in names:
            names.append(name)
    return names


def _load_builtins() -> None:
    # The built-in implementations register themselves on import; done lazily so that importing
    # the registry from them does not recurse.
    from .. import impls  # noqa: F401


__all__ = ["Impl", "Shipped", "SHIPPED_ADAPTERS", "register_impl", "unregister_impl", "get_impl", "available_impls", "all_impls",
           "load_impl", "resolve_impls"]
