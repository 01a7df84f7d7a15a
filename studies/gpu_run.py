"""The first verified CUDA run, in one command of at most ~7 minutes, everything written into one folder.

    python -m studies.gpu_run --out DIR [--budget 400]

Steps, in this order, each a subprocess under its own time limit (and under what is left of
`--budget` seconds), so that one hang loses only that step; a step past its limit gets
SIGINT (pytest and `bench` then write what they have: the junit file, every finished point),
then SIGKILL 20 s later:

    info     `python -m lstm_bench info --device cuda --json`              -> info.json
    machine  GPU identity, cuBLAS peak per mode (float32 with TF32 off, TF32, bfloat16,
             float16; square and the anchor's own GEMM shapes), empty-launch time -> machine.json
    anchor   fastrnns' point T=100, B=64, I=H=512: nn_lstm (cuDNN) and vectorised in float32
             (TF32 off), TF32 and bfloat16: forward, backward, forward+backward eager and in a
             CUDA graph, against the measured GEMM floor, the H200's datasheet floor and
             fastrnns' 11.2 ms / 14.3 ms                                    -> anchor.json
    pytest   the CUDA subset of the test suite and of the conformance suite (-k "cuda or cudnn
             or gpu": every test parametrised over cuda, tests/test_cudnn.py, gradcheck and the
             suite on every CUDA kernel, the fake-CUDA plumbing tests), -n 8, no -x: every
             failure is reported                                              -> pytest-junit.xml
    bench    `lstm-bench bench` on CUDA with TF32 off: every built-in implementation, T 10,100,
             B 1,64, H 64,512, float32, eager and CUDA-graph, % of peak, launch floor, saved and
             peak bytes                                                        -> bench-cuda.jsonl

and last `summary.md` (studies/gpu_summary.py) from whatever the steps left, and `gpu_run.log`
(every step's command, output, exit status and seconds). Seven files, each small.

Without CUDA (a dry run on a CPU machine) machine, anchor and bench are skipped with the reason,
pytest still runs the subset (its CUDA tests skip, the fake-CUDA tests run), and the log, the
junit file, info.json and summary.md are written: the plumbing is proven. tests/test_gpu_run.py
runs the machine and anchor steps and the summary against a faked GPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_CUDA = "CUDA not available: torch.cuda.is_available() is False; skipped (a dry run proves the plumbing only)"

# (step, its own limit in seconds); measured figures for the limits do not exist yet (no CUDA
# line has ever run), so they are generous shares of a 400 s budget, the longest last.
STEPS = (("info", 60), ("machine", 75), ("anchor", 90), ("pytest", 190), ("bench", 240))
PYTEST_FILTER = "cuda or cudnn or gpu"
PYTEST_TEST_TIMEOUT_S = 90  # per test (pytest-timeout), so one hung test fails alone
BENCH_AXES = ("-T", "10,100", "-B", "1,64", "-H", "64,512", "--dtype", "float32", "--repeats", "7", "--warmup", "2")

# The anchor: PyTorch's fastrnns benchmark point (benchmarks/fastrnns, cuDNN LSTM forward 11.2 ms,
# backward 14.3 ms on an older GPU), 80.5 GFLOP per forward+backward (lstm_bench/bench/flops.py).
ANCHOR = dict(T=100, B=64, I=512, H=512)
FASTRNNS_MS = {"forward": 11.2, "backward": 14.3}
# H200 SXM datasheet dense peaks, TFLOP/s (float32 67, TF32 495, bfloat16 989): 80.5 GFLOP over them
DATASHEET_TFLOPS = {"float32": 67.0, "tf32": 495.0, "bfloat16": 989.0}
MODES = (("float32", "float32", False), ("tf32", "float32", True), ("bfloat16", "bfloat16", False))
ANCHOR_IMPLS = ("nn_lstm", "vectorised")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_json(path: Path, obj: dict) -> None:
    from lstm_bench.core.strict_json import dumps

    path.write_text(dumps(obj, indent=1) + "\n")


# --- steps run in their own process --------------------------------------------------------------

def step_machine(out: Path) -> int:
    import torch

    from lstm_bench.machine.gpu import gpu_identity, nvml_unavailable_reason
    from lstm_bench.machine.gpu_timing import launch_seconds
    from lstm_bench.machine.peak import gpu_peaks

    if not torch.cuda.is_available():
        _write_json(out / "machine.json", {"skipped": NO_CUDA})
        print(NO_CUDA)
        return 0
    T, B, I, H = ANCHOR["T"], ANCHOR["B"], ANCHOR["I"], ANCHOR["H"]
    shapes = [(T * B, I, 4 * H), (B, H, 4 * H)]  # the anchor's input projection and one recurrent step
    ident = gpu_identity("cuda")
    print(f"GPU: {ident}")
    launch = launch_seconds("cuda")
    print(f"empty launch: {launch * 1e6:.2f} us")
    peaks = {k: v.to_json() for k, v in gpu_peaks("cuda", shapes=shapes).items()}
    for k, v in peaks.items():
        print(f"peak {k}: {v['gflops']} GFLOP/s ({v['library']}, {v['shape']}) {v['reason']}")
    _write_json(out / "machine.json", {"gpu": ident, "launch_s": launch, "peaks": peaks, "shapes": shapes,
                                       "nvml": nvml_unavailable_reason()})
    return 0


def step_anchor(out: Path) -> int:
    import statistics

    import torch

    from lstm_bench.bench.flops import lstm_flops
    from lstm_bench.bench.grid import Point
    from lstm_bench.bench.measure import measure_point
    from lstm_bench.core.devices import tf32

    if not torch.cuda.is_available():
        _write_json(out / "anchor.json", {"skipped": NO_CUDA})
        print(NO_CUDA)
        return 0
    flops = lstm_flops(ANCHOR["T"], ANCHOR["B"], ANCHOR["I"], ANCHOR["H"], backward=True)
    rows, failed = [], 0
    for mode, dtype, tf32_on in MODES:
        for impl in ANCHOR_IMPLS:
            point = Point(impl, ANCHOR["T"], ANCHOR["B"], ANCHOR["I"], ANCHOR["H"], device="cuda", dtype=dtype)
            row = {"mode": mode, "impl": impl, "tf32": tf32_on, "key": point.key}
            try:
                with tf32(tf32_on):
                    m = measure_point(point, repeats=7, warmup=2)
                g = m.gpu
                row.update(status="ok", backend=m.backend, forward_ms=1e3 * m.forward_median_s,
                           backward_ms=1e3 * statistics.median(g.backward_s) if g.backward_s else None,
                           backward_data_ms=1e3 * statistics.median(g.backward_data_s) if g.backward_data_s else None,
                           forward_backward_ms=1e3 * m.forward_backward_median_s,
                           graph_ms=1e3 * statistics.median(g.graph_s) if g.graph_s else None,
                           graph_reason=g.graph_reason, max_rel_error=m.max_rel_error, saved_bytes=m.saved_bytes,
                           peak_bytes=m.peak_bytes, measurement=m.to_json())
            except Exception as err:  # recorded, and the next mode runs
                failed += 1
                row.update(status="failed", error=f"{type(err).__name__}: {err}")
            print(json.dumps({k: v for k, v in row.items() if k != "measurement"}))
            rows.append(row)
            torch.cuda.empty_cache()
    _write_json(out / "anchor.json", {"point": ANCHOR, "gflop": flops / 1e9, "fastrnns_ms": FASTRNNS_MS,
                                      "datasheet_floor_ms": {k: flops / (v * 1e12) * 1e3
                                                             for k, v in DATASHEET_TFLOPS.items()},
                                      "rows": rows})
    return 1 if failed else 0


def step_bench(out: Path) -> int:
    """`lstm-bench bench` on the CUDA grid with TF32 off for matmuls and cuDNN, so that every float32
    implementation computes in float32 and "% peak" is of the true-float32 GEMM (TF32: the anchor)."""
    from lstm_bench.cli import main as cli_main
    from lstm_bench.core.devices import tf32

    with tf32(False):
        return cli_main(["bench", "--device", "cuda", *BENCH_AXES, "--no-progress",
                         "--out", str(out / "bench-cuda.jsonl")])


# --- the driver ------------------------------------------------------------------------------------

def _command(step: str, out: Path, pytest_k: str = PYTEST_FILTER) -> list[str] | str:
    """The step's command line, or the reason it does not run here (`pytest_k` "": the whole suite)."""
    py = sys.executable
    if step == "info":
        return [py, "-m", "lstm_bench", "info", "--json"] + (["--device", "cuda"] if _cuda() else ["--no-peak"])
    if step in ("machine", "anchor", "bench"):
        if not _cuda():
            return NO_CUDA
        return [py, "-m", "studies.gpu_run", "--step", step, "--out", str(out)]
    if step == "pytest":
        # -v: each test's outcome reaches the log as it finishes, so the failures are named even when
        # the step's limit cuts pytest off before it writes the junit file (the second H200 run lost
        # the names of 3 failures that way).
        cmd = [py, "-m", "pytest", "-v", "-rfE", "-p", "no:cacheprovider", "-n", str(min(8, os.cpu_count() or 1)),
               *(["-k", pytest_k] if pytest_k else []), f"--junitxml={out / 'pytest-junit.xml'}", "tests",
               "lstm_bench/conformance"]
        if importlib.util.find_spec("pytest_timeout") is not None:
            cmd.insert(3, f"--timeout={PYTEST_TEST_TIMEOUT_S}")
        return cmd
    raise ValueError(f"unknown step {step!r}")


def _run(cmd: list[str], limit: float, log, env: dict, stdout=None) -> tuple[int | None, bool]:
    """(exit status or None, timed out) of `cmd`, interrupted (SIGINT, then SIGKILL) past `limit` seconds."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout or log, stderr=log, start_new_session=True)
    try:
        return proc.wait(timeout=max(1.0, limit)), False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # pytest and bench write what they have on an interrupt
        try:
            return proc.wait(timeout=20), True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(), True


def drive(out: Path, budget: float, steps: list[str], pytest_k: str = PYTEST_FILTER) -> int:
    from studies.gpu_summary import write_summary

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               PYTHONUNBUFFERED="1", LSTM_BENCH_CACHE_DIR=tempfile.mkdtemp(prefix="lstm-bench-cache-"))
    outcomes = []
    with open(out / "gpu_run.log", "a", buffering=1) as log:
        log.write(f"== lstm-bench GPU run, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
                  f"budget {budget:.0f} s, root {ROOT}\n")
        for step, own_limit in STEPS:
            if step not in steps:
                continue
            left = budget - (time.monotonic() - t0)
            cmd = _command(step, out, pytest_k)
            if isinstance(cmd, str) or left < 5:
                why = cmd if isinstance(cmd, str) else f"no time left ({left:.0f} s of the {budget:.0f} s budget)"
                log.write(f"\n== {step}: skipped: {why}\n")
                outcomes.append({"step": step, "rc": None, "seconds": 0.0, "timed_out": False, "skipped": why})
                continue
            limit = min(own_limit, left)
            log.write(f"\n== {step} (limit {limit:.0f} s): {' '.join(cmd)}\n")
            s0 = time.monotonic()
            if step == "info":
                with open(out / "info.json", "w") as info:
                    rc, timed_out = _run(cmd, limit, log, env, stdout=info)
            else:
                rc, timed_out = _run(cmd, limit, log, env)
            seconds = time.monotonic() - s0
            log.write(f"== {step}: exit {rc}{' (TIMED OUT)' if timed_out else ''} after {seconds:.1f} s\n")
            outcomes.append({"step": step, "rc": rc, "seconds": round(seconds, 1), "timed_out": timed_out,
                             "skipped": ""})
        total = time.monotonic() - t0
        write_summary(out, outcomes, total)
        log.write(f"\n== done in {total:.1f} s; summary in {out / 'summary.md'}\n")
    print(f"lstm-bench GPU run: {total:.0f} s; files in {out}: "
          + ", ".join(sorted(p.name for p in out.iterdir() if p.is_file())))
    bad = [o["step"] for o in outcomes if o["timed_out"] or (o["rc"] not in (0, None))]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies.gpu_run", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for every file the run writes (created)")
    ap.add_argument("--budget", type=float, default=400.0, help="seconds for all steps together (default 400)")
    ap.add_argument("--only", default="", help="comma list of steps to run (default all: "
                                              + ",".join(s for s, _ in STEPS) + ")")
    ap.add_argument("--pytest-k", default=PYTEST_FILTER,
                    help=f"pytest's -k for the pytest step (default {PYTEST_FILTER!r}; '' runs the whole suite)")
    ap.add_argument("--step", choices=("machine", "anchor", "bench"), help=argparse.SUPPRESS)  # its own process
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.step:
        out.mkdir(parents=True, exist_ok=True)
        return {"machine": step_machine, "anchor": step_anchor, "bench": step_bench}[args.step](out)
    names = [s for s, _ in STEPS]
    only = [s.strip() for s in args.only.split(",") if s.strip()] or names
    unknown = sorted(set(only) - set(names))
    if unknown:
        print(f"gpu_run: --only {','.join(unknown)}: unknown step(s); steps are {', '.join(names)}", file=sys.stderr)
        return 2
    return drive(out, args.budget, only, args.pytest_k)


if __name__ == "__main__":
    sys.exit(main())
