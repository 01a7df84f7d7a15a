"""The worker process of `lstm-bench ab`: times one side's code on request, one JSON line at a time.

The coordinator (`lstm_bench.comparison.ab`) starts this FILE, from its own installation, with the
other side's Python: `[base_python, .../lstm_bench/comparison/ab_worker.py]`. So the worker must
run under whatever lstm-bench that environment has, back to 0.1. It imports nothing of
lstm-bench but the public API 0.1 already had (`lstm_bench.make_case`, `get_impl`,
`register_impl`, `Impl.split()` / `.fn`), loads a user's `module:function` itself, and
carries its own copy of the timing loop, so that both sides are timed by the same code
(the coordinator's) whatever their versions.

Protocol: one JSON object per line on stdin, one reply per line on stdout; every reply
has "ok" (and "error" when false). Anything the code under test prints goes to stderr:
stdout is moved to stderr at start and the protocol keeps a private copy of the pipe.

    {"op": "hello"}                           -> versions, pid, injected slowdown
    {"op": "setup", "id": "k", "point": {impl, T, B, I, H, device, dtype, num_layers, bidirectional,
     proj_size, lengths}, "lengths": [L_b, ...] | null, "spec": "module:function" | null, "seed": 0,
     "threads": 2, "warmup": 1}
                                              -> {"seconds": one timed call, "halves": bool}
    {"op": "time", "id": "k", "number": n}    -> {"seconds": mean seconds per call of n calls}
    {"op": "drop", "id": "k"}                 -> frees the point's case
    {"op": "quit"}                            -> exits

$LSTM_BENCH_INJECT_SLOWDOWN (a fraction, e.g. 0.05) makes every timed call busy-wait
that fraction of its own duration: a known slowdown of the very same code, for
calibrating the comparison (the rule of `lstm_bench.impls.slowdown`, copied here because 0.1
does not have that module).
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import platform
import sys
import time

PROTOCOL = 1
INJECT_ENV = "LSTM_BENCH_INJECT_SLOWDOWN"


def _injected() -> float:
    text = os.environ.get(INJECT_ENV, "").strip()
    if not text:
        return 0.0
    value = float(text)
    if not 0 <= value < 10:
        raise ValueError(f"${INJECT_ENV} must be a fraction in [0, 10), got {text!r}")
    return value


def _slowed(call, fraction: float):
    """`call` followed by a busy wait of `fraction` times its own duration."""
    if not fraction:
        return call

    def run():
        t0 = time.perf_counter()
        out = call()
        end = t0 + (time.perf_counter() - t0) * (1.0 + fraction)
        while time.perf_counter() < end:
            pass
        return out
    return run


def time_calls(call, device: str, number: int) -> float:
    """Mean seconds per call of `number` calls: one repeat of the timing loop.

    The same rule as `lstm_bench.machine.timing.time_fn`: garbage collector off inside the timed
    region; on CUDA a synchronisation first and CUDA events around the calls (so that
    asynchronous launches are not mistaken for work done); `perf_counter` on the CPU."""
    import torch

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(number):
                call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number
        t0 = time.perf_counter()
        for _ in range(number):
            call()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def _load_user_impl(spec: str):
    """Register the function `[NAME=]module:function` (or `path/file.py:function`) names; return its name.

    The parsing repeats `registry.load_impl`'s because a BASE environment's lstm-bench
    may be 0.1, which has no `load_impl`."""
    import lstm_bench

    name, sep, target = spec.partition("=")
    if not sep:
        name, target = "", spec
    module, _, attr = target.rpartition(":")
    if not module or not attr:
        raise ValueError(f"{spec!r}: expected module:function or path/file.py:function")
    if module.endswith(".py") or os.sep in module:
        path = os.path.abspath(module)
        loader = importlib.util.spec_from_file_location("lstm_bench_ab_user_" + str(abs(hash(path))), path)
        if loader is None or not os.path.isfile(path):
            raise ValueError(f"{spec}: no such file {module!r}")
        mod = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    obj = mod
    for part in attr.split("."):
        obj = getattr(obj, part)
    name = name or attr.split(".")[-1]
    forward, backward = getattr(obj, "forward", None), getattr(obj, "backward", None)
    halves = {"forward": forward, "backward": backward} if callable(forward) and callable(backward) else {}
    devices = getattr(obj, "devices", ("cpu", "cuda"))
    lstm_bench.register_impl(name, obj, devices, replace=True, **halves)
    return name


class Worker:
    def __init__(self) -> None:
        self.points: dict[str, tuple] = {}
        self.fraction = _injected()
        self.loaded: dict[str, str] = {}  # spec -> registered name: a user's file is run once, not per point

    def hello(self, req: dict) -> dict:
        import torch

        import lstm_bench

        return {"protocol": PROTOCOL, "lstm_bench": getattr(lstm_bench, "__version__", None),
                "lstm_bench_file": getattr(lstm_bench, "__file__", None), "torch": torch.__version__,
                "python": platform.python_version(), "executable": sys.executable, "pid": os.getpid(),
                "inject": self.fraction}

    def setup(self, req: dict) -> dict:
        import torch

        import lstm_bench

        p = req["point"]
        torch.set_num_threads(int(req["threads"]))
        spec = req.get("spec")
        if spec and spec not in self.loaded:
            self.loaded[spec] = _load_user_impl(spec)
        name = self.loaded[spec] if spec else p["impl"]
        impl = lstm_bench.get_impl(name)
        device = p["device"]
        dtype = getattr(torch, p["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {p['dtype']!r}")
        # nn.LSTM's configuration only when the point has one: lstm-bench 0.1's make_case has no such
        # arguments, so a plain point still runs there, and a configured one fails there by name.
        config = {k: p[k] for k, plain in (("num_layers", 1), ("bidirectional", False), ("proj_size", 0))
                  if p.get(k, plain) != plain}
        if req.get("lengths") is not None:
            config["lengths"] = torch.tensor(req["lengths"], dtype=torch.int64)
        case = lstm_bench.make_case(p["T"], p["B"], p["I"], p["H"], dtype=dtype, device=device,
                                    seed=int(req.get("seed", 0)), **config)
        try:
            forward, backward = impl.split()
            halves = True

            def call():
                return backward(case, forward(case))
        except NotImplementedError:
            fn, halves = impl.fn, False

            def call():
                return fn(case)
        if device == "cuda":
            inner = call

            def call():
                out = inner()
                torch.cuda.synchronize()
                return out
        call = _slowed(call, self.fraction)
        for _ in range(int(req.get("warmup", 1))):
            call()
        self.points[req["id"]] = (call, device)
        return {"seconds": time_calls(call, device, 1), "halves": halves}

    def time(self, req: dict) -> dict:
        call, device = self.points[req["id"]]
        return {"seconds": time_calls(call, device, int(req.get("number", 1)))}

    def drop(self, req: dict) -> dict:
        self.points.pop(req["id"], None)
        gc.collect()
        return {}


def main() -> int:
    # The protocol gets a private copy of stdout; fd 1 (and sys.stdout) become stderr, so
    # that nothing the code under test prints, from Python or C, can corrupt a reply.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Run as a script, this file's folder (the coordinator's lstm_bench/) is sys.path[0]:
    # drop it, so that its modules cannot shadow anything; the working directory instead,
    # where a user's `module:function` usually lives.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.getcwd())
    worker = Worker()
    ops = {"hello": worker.hello, "setup": worker.setup, "time": worker.time, "drop": worker.drop}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "quit":
                proto.write(json.dumps({"ok": True}) + "\n")
                return 0
            if op not in ops:
                raise ValueError(f"unknown op {op!r}")
            reply = {"ok": True, **ops[op](req)}
        except Exception as err:  # the code under test failed: reported, the worker lives on
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}".strip()}
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
