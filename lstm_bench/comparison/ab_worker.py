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
     "threads": 2, "warmup": 1, "case": FILE | null, "result": FILE | null}
                                              -> {"seconds": one timed call, "halves": bool, "backend": str}
    {"op": "time", "id": "k", "number": n}    -> {"seconds": mean seconds per call of n calls}
    {"op": "verify", "id": "k", "result": FILE, "check_case": FILE, "check_result": FILE}
                                              -> {"backend": str}
    {"op": "drop", "id": "k"}                 -> frees the point's case
    {"op": "quit"}                            -> exits

The accuracy gate's half here (protocol 2; the judging is the coordinator's, under its own
tolerance policy, `lstm_bench.comparison.ab_checks`): "case" names a file of the point's
tensors (torch.save of {name: tensor}, the coordinator's `make_case`), copied into the
worker's own case in place, so that both sides compute on the very same numbers whatever
their versions; "result" is where the result of setup's timed call goes (torch.save of
`Result.tensors()`). `verify`, after the timing, saves the output of the LAST timed call,
then copies "check_case"'s numbers into the same case tensors (same storage, same shapes:
a kernel that caches its result, by pointer, by shape or not keyed at all, returns a stale
one), calls once more and saves that result too.

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

PROTOCOL = 2
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


def time_calls(call, device: str, number: int):
    """(mean seconds per call of `number` calls, the last call's output): one repeat of the timing loop.

    The same rule as `lstm_bench.machine.timing.time_fn`: garbage collector off inside the timed
    region; on CUDA a synchronisation first and CUDA events around the calls (so that
    asynchronous launches are not mistaken for work done); `perf_counter` on the CPU. The last
    output is kept for the accuracy gate (`verify`): both sides keep one, alike."""
    import torch

    gc_was_enabled = gc.isenabled()
    gc.disable()
    out = None
    try:
        if device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(number):
                out = call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number, out
        t0 = time.perf_counter()
        for _ in range(number):
            out = call()
        return (time.perf_counter() - t0) / number, out
    finally:
        if gc_was_enabled:
            gc.enable()


def _fill(case, path: str) -> None:
    """Copy the tensors saved in `path` into `case`'s own tensors, in place. Names and shapes follow
    the coordinator's version; lstm-bench 0.1 names single-layer weights without "_l0" and keeps
    states as (B, H) where later versions have (1, B, H): same numbers, reshaped."""
    import torch

    saved = torch.load(path)
    with torch.no_grad():
        for name, t in case.tensors().items():
            src = saved.get(name, saved.get(name + "_l0"))
            if src is None or src.numel() != t.numel():
                raise ValueError(f"the coordinator's case has no tensor {name!r} of {t.numel()} elements")
            t.copy_(src.reshape(t.shape))


def _save_result(out, path: str) -> str:
    """torch.save `out.tensors()` (CPU copies) to `path`; return `out.backend`."""
    import torch

    tensors = getattr(out, "tensors", None)
    if not callable(tensors):
        raise ValueError(f"the kernel returned {type(out).__name__}, not an lstm_bench Result")
    torch.save({k: v.detach().cpu().clone() for k, v in tensors().items()}, path)
    return str(getattr(out, "backend", "") or "")


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
        self.last: dict[str, object] = {}  # point id -> the output of its last timed call

    # torch and lstm_bench are imported here, after stdout was moved to stderr (module docstring): whatever
    # they or the code under test print on import never reaches the protocol.
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
        if req.get("case"):
            _fill(case, req["case"])
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
        self.points[req["id"]] = (call, device, case)
        seconds, out = time_calls(call, device, 1)
        backend = _save_result(out, req["result"]) if req.get("result") else str(getattr(out, "backend", "") or "")
        self.last[req["id"]] = out
        # A forward-only kernel (declared gradients=False; lstm-bench 0.1 knows no such declaration) is judged
        # on output, h_n and c_n: the coordinator needs the declaration it was loaded with.
        gradients = (getattr(getattr(impl, "support", None), "gradients", True)
                     and getattr(impl.fn, "gradients", True) is not False)
        return {"seconds": seconds, "halves": halves, "backend": backend, "gradients": bool(gradients)}

    def time(self, req: dict) -> dict:
        call, device, _ = self.points[req["id"]]
        seconds, self.last[req["id"]] = time_calls(call, device, int(req.get("number", 1)))
        return {"seconds": seconds}

    def verify(self, req: dict) -> dict:
        call, device, case = self.points[req["id"]]
        backend = _save_result(self.last.pop(req["id"]), req["result"])
        _fill(case, req["check_case"])
        _, out = time_calls(call, device, 1)
        return {"backend": backend, "check_backend": _save_result(out, req["check_result"])}

    def drop(self, req: dict) -> dict:
        self.points.pop(req["id"], None)
        self.last.pop(req["id"], None)
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
    ops = {"hello": worker.hello, "setup": worker.setup, "time": worker.time, "verify": worker.verify,
           "drop": worker.drop}
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
