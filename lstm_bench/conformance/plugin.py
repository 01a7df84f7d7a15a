"""The pytest plugin of the conformance suite: which kernels, devices, depth and seed.

Registered through the `pytest11` entry point, so `pip install lstm-bench` is all it
takes; it is inert in every other test suite (it only parametrises tests that ask for
its fixtures, `lstm_kernel` and `lstm_case_spec`, which only the suite's tests do).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
import torch

from ..core.contract import Case
from ..core.devices import KNOWN_DEVICES, tf32
from ..core.registry import Impl, all_impls, get_impl, resolve_impls
from ..core.support import FORWARD_ONLY, Unsupported
from .assertions import assert_agrees
from .cases import DEPTHS, CaseSpec, catalogue

# Random cases per kernel and device at each depth (--lstm-examples overrides).
EXAMPLES = {"quick": 8, "default": 20, "nightly": 300}


@dataclass(frozen=True)
class Settings:
    impls: tuple[str, ...]
    devices: tuple[str, ...]
    depth: str
    seed: int
    examples: int
    threads: int


SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lstm-bench", "lstm-bench conformance suite (pytest --pyargs lstm_bench.conformance)")
    group.addoption("--lstm-impl", action="append", default=[], metavar="NAME|MODULE:FUNCTION",
                    help="kernel to run the suite on: a registered name, module:function or path/file.py:function "
                         "(repeatable; default: every registered implementation)")
    group.addoption("--lstm-depth", choices=DEPTHS, default="default",
                    help="quick, default, or nightly (more and longer cases, 300 random ones)")
    group.addoption("--lstm-seed", type=int, default=0, help="seed of the random cases (default 0)")
    group.addoption("--lstm-examples", type=int, default=None,
                    help="random cases per kernel and device (default by depth: " + ", ".join(
                        f"{k} {v}" for k, v in EXAMPLES.items()) + ")")
    group.addoption("--lstm-device", action="append", default=[], choices=KNOWN_DEVICES,
                    help="devices to run on (default: every device; missing ones skip with the reason)")
    group.addoption("--lstm-threads", type=int, default=1,
                    help="torch's CPU threads while a kernel is judged (default 1, so that pytest -n auto "
                         "scales across processes; raise it to exercise a kernel's threading)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pt2: compiles (the PT2 gates, and kernels that compile: `cold_start`); "
                                       "deselect with -m 'not pt2'")
    try:
        impls = tuple(resolve_impls(config.getoption("lstm_impl"))) or tuple(all_impls())
    except (ValueError, KeyError) as err:  # a kernel that cannot be loaded: one line, pytest's usage error
        raise pytest.UsageError(f"--lstm-impl: {err.args[0] if err.args else err}") from None
    depth = config.getoption("lstm_depth")
    examples, threads = config.getoption("lstm_examples"), config.getoption("lstm_threads")
    for flag, value in (("--lstm-examples", examples), ("--lstm-threads", threads)):
        if value is not None and value < 1:
            raise pytest.UsageError(f"{flag} must be a positive integer, got {value}")
    config.stash[SETTINGS] = Settings(impls, tuple(config.getoption("lstm_device")) or KNOWN_DEVICES, depth,
                                      config.getoption("lstm_seed"), examples or EXAMPLES[depth], threads)


def pytest_report_header(config: pytest.Config) -> str | None:
    s = config.stash.get(SETTINGS, None)
    if s is None or not config.getoption("lstm_impl"):
        return None
    return (f"lstm-bench conformance: kernels {', '.join(s.impls)}; depth {s.depth}, seed {s.seed}, "
            f"{s.examples} random cases each, {s.threads} CPU thread(s)") + "".join(
        f"\nlstm-bench conformance: {name}: {FORWARD_ONLY}" for name in _forward_only(s))


def _forward_only(settings: Settings) -> list[str]:
    """The kernels of the run declared forward-only (`gradients=False`)."""
    return [name for name in settings.impls if not get_impl(name).support.gradients]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say, under the results, which kernels were judged on their forward alone."""
    s = config.stash.get(SETTINGS, None)
    if s is None:
        return
    for name in _forward_only(s):
        terminalreporter.write_line(f"lstm-bench conformance: {name} judged on output, h_n and c_n ({FORWARD_ONLY}); "
                                    f"the gates that need gradients skipped with that reason")


@dataclass(frozen=True)
class Kernel:
    """A kernel under test on one device (the `lstm_kernel` fixture)."""

    impl: Impl
    device: str

    @property
    def name(self) -> str:
        return self.impl.name

    def case(self, spec: CaseSpec) -> Case:
        """`spec` made on this device; the test is skipped, with the reason, if the kernel does not support it."""
        case = spec.make(self.device)
        reason = self.impl.unsupported_reason(case)
        if reason is not None:
            pytest.skip(reason)
        return case

    def needs_gradients(self, what: str) -> None:
        """Skip, with the reason, a gate that needs gradients (`what` it does with them) when the
        kernel is declared forward-only."""
        if not self.impl.support.gradients:
            pytest.skip(f"{self.name}: {FORWARD_ONLY}; {what}")

    def assert_agrees(self, spec: CaseSpec, msg: str = "") -> None:
        """`testing.assert_agrees` on `spec`; a skip, with the reason, for a case the kernel does
        not support or that has no yardstick (a low-precision case the vendor cannot run)."""
        self.case(spec)
        try:
            assert_agrees(self.impl, spec, device=self.device, msg=msg)
        except Unsupported as why:
            pytest.skip(str(why))

    def supported(self, specs: list[CaseSpec]) -> CaseSpec:
        """The first of `specs` this kernel supports; a skip naming them all when it supports none."""
        reasons = []
        for spec in specs:
            reason = self.impl.unsupported_reason(spec.make("cpu").to(device=self.device))
            if reason is None:
                return spec
            reasons.append(reason)
        pytest.skip("; ".join(dict.fromkeys(reasons)))


def _kernel_params(settings: Settings) -> list:
    params = []
    for name in settings.impls:
        impl = get_impl(name)
        for device in settings.devices:
            marks = []
            if device == "cuda" and not torch.cuda.is_available():
                marks.append(pytest.mark.skip(reason="CUDA not available: torch.cuda.is_available() is False"))
            elif device not in impl.devices:
                marks.append(pytest.mark.skip(reason=f"implementation {name!r} runs on {list(impl.devices)}, "
                                                     f"not on {device}"))
            if getattr(impl.fn, "cold_start", None) is not None:  # it compiles: slow, with the PT2 family
                marks.append(pytest.mark.pt2)
            params.append(pytest.param((name, device), id=f"{name}-{device}", marks=marks))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash.get(SETTINGS, None)
    if settings is None:
        return
    if "lstm_kernel" in metafunc.fixturenames:
        metafunc.parametrize("lstm_kernel", _kernel_params(settings), indirect=True)
    if "lstm_case_spec" in metafunc.fixturenames:
        specs = catalogue(settings.depth)
        metafunc.parametrize("lstm_case_spec", specs, ids=[s.id for s in specs])


@contextlib.contextmanager
def _judging(threads: int):
    """While a kernel is judged: `threads` CPU threads, and TF32 off on CUDA, so that float32
    cases are judged as float32. Both restored afterwards."""
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tf32(False):
            yield
    finally:
        torch.set_num_threads(saved_threads)


@pytest.fixture
def lstm_kernel(request: pytest.FixtureRequest):
    """The kernel under test and its device (parametrised over --lstm-impl x --lstm-device)."""
    name, device = request.param
    with _judging(request.config.stash[SETTINGS].threads):
        yield Kernel(get_impl(name), device)


@pytest.fixture
def lstm_settings(request: pytest.FixtureRequest) -> Settings:
    return request.config.stash[SETTINGS]
